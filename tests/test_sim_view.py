"""Recording demonstrations in simulation as a person does: the scene in a window, and a label the
simulator contradicts caught before it reaches the demonstrations."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import numpy as np
import pytest

from farl_bringup.record import record_config, run_record
from farl_common.bags import read_episode
from farl_common.runtime.inprocess import InProcessRuntime
from farl_teleop.devices import Keyboard
from farl_teleop.mapping import AxisMapping
from farl_teleop.operators import DeviceOperator
from farl_teleop.sim_view import HAND_BGR, OBJECT_BGR
from tests.mocks.scripted_keys import ScriptedKeys


def keyboard(rt: InProcessRuntime, script: list[tuple[float, str]]) -> DeviceOperator:
    keys = ScriptedKeys(lambda: rt.now_ns / 1e9, script)
    return DeviceOperator(Keyboard(0.3, keys), AxisMapping.from_names(["x", "y", "z"], 0.1, 1.0))


def record(tmp_path, script, **kw):
    rt = InProcessRuntime()
    result = run_record(
        record_config("fragile_push_wall", "sim"),
        kind="task",
        device="keyboard",
        out=tmp_path / "demos",
        episodes=1,
        operator=keyboard(rt, script),
        status_line=False,
        until_s=12.0,
        runtime=rt,
        **kw,
    )
    return result, rt


def test_a_success_the_simulator_does_not_see_is_not_kept_as_one(tmp_path) -> None:
    """Start, push a little, press s (success) while the puck is nowhere near the goal: the bag is kept
    with the simulator's outcome, and the log says why."""
    result, rt = record(tmp_path, [(1.0, "e"), *((1.2 + 0.2 * k, "j") for k in range(5)), (3.0, "s"), (4.0, "a")])
    ep = read_episode(result.bags[0])
    assert ep.outcome == "timeout" and not ep.done.any()
    assert any("marked success, but the simulator finds the task not done" in r.text for r in rt.logs)


@pytest.fixture
def xvfb(monkeypatch):
    """A virtual X display for the test's windows."""
    if shutil.which("Xvfb") is None:
        pytest.skip("needs Xvfb (apt-get install xvfb; apt-packages.txt lists it)")
    display = f":{90 + os.getpid() % 9}"
    proc = subprocess.Popen(["Xvfb", display, "-screen", "0", "800x600x24", "-nolisten", "tcp"])
    time.sleep(1.5)
    monkeypatch.setenv("DISPLAY", display)
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    yield display
    proc.terminate()
    proc.wait(timeout=10)


def test_recording_in_sim_shows_the_scene_with_the_hand_the_object_and_the_status(tmp_path, xvfb) -> None:
    """`farl record --mode sim`'s window on a virtual display: a screenshot holds the rendered scene, the
    hand's and the object's markers in their colours, and the status bar."""
    from PIL import ImageGrab

    shown = []

    def show_and_keep(bgr):
        import cv2

        shown.append(bgr)
        cv2.imshow("farl record", bgr)
        for _ in range(5):
            cv2.waitKey(10)

    result, _ = record(
        tmp_path,
        [(1.0, "e"), *((1.2 + 0.2 * k, "l") for k in range(4)), (3.0, "e"), (4.0, "a")],
        view=True,
        show=show_and_keep,
    )
    assert result.bags and len(shown) >= 5
    shot = np.asarray(ImageGrab.grab(xdisplay=xvfb).convert("RGB"))[:, :, ::-1]  # BGR, as drawn
    import cv2

    frame = shown[-1]
    match = cv2.matchTemplate(np.ascontiguousarray(shot), frame, cv2.TM_CCOEFF_NORMED)
    _, best, _, (x, y) = cv2.minMaxLoc(match)
    assert best > 0.95, f"the last drawn frame is not on the screen (best match {best:.2f})"
    window = shot[y : y + frame.shape[0], x : x + frame.shape[1]]

    def count(img, bgr):
        return int((np.abs(img.astype(int) - np.array(bgr)).sum(-1) < 40).sum())

    assert count(window, HAND_BGR) > 30 and count(window, OBJECT_BGR) > 30  # both markers, on screen
    assert window[44:].std() > 20  # a rendered scene below the status bar, not an empty window
    assert (window[:44] > 200).all(-1).sum() > 100  # the status line, white on the black bar
