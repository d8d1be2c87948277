"""`with` blocks over things that are either finished or discarded: an episode bag, a graph run."""

from __future__ import annotations

from typing import Any, Self


class CloseOrAbort:
    """Closes the object when its `with` block ends normally and aborts it when an exception ends the
    block, so that half-written work (an unfinished bag, a graph stopped mid-episode) is never kept as
    if it were complete. Subclasses define `close` and `abort`."""

    def close(self) -> Any:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
