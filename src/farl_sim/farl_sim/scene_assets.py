"""MuJoCo scene files FailureBench adds to MetaWorld's: the push scene with a fragile vase.

MetaWorld's scene files include their neighbours by relative path (`../scene/...`), so the
generated file lives in a private folder whose `scene/`, `objects/` and `textures/` are links
to MetaWorld's own assets: nothing in site-packages is written.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from metaworld.asset_path_utils import full_V3_path_for

VASE_BODY = "farl_vase"

_VASE_XML = """
      <body name="{body}" pos="0 0.75 {half_height}">
        <geom name="farl_vase_geom" type="cylinder" size="{radius} {half_height}" rgba="0.55 0.75 0.95 1"
              contype="1" conaffinity="1" condim="3" solimp="0.99 0.99 0.01" solref="0.01 1"/>
        <geom name="farl_vase_neck" type="cylinder" pos="0 0 {neck_z}" size="{neck_r} {neck_hh}"
              rgba="0.55 0.75 0.95 1" contype="1" conaffinity="1" condim="3"/>
      </body>
"""


def write_scene(base: str, name: str, text: str) -> str:
    """Write `text`, a scene made from MetaWorld's `base` (`sawyer_push_v3.xml`), as `name` in a private
    folder beside links to MetaWorld's assets, so its relative includes resolve; returns its path.

    The folder is named by what it holds (the scene and the assets it links to), so every process that
    builds the same scene uses one folder instead of leaving a new one in the temporary directory."""
    assets = Path(full_V3_path_for(f"sawyer_xyz/{base}")).parent.parent
    key = hashlib.sha256(f"{assets}\0{name}\0{text}".encode()).hexdigest()[:16]
    scenes = Path(tempfile.gettempdir()) / f"farl-scenes-{os.getuid()}"
    root = scenes / key
    out = root / "sawyer_xyz" / name
    if out.is_file():
        return str(out)
    scenes.mkdir(mode=0o700, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=scenes))
    for sub in ("scene", "objects", "textures"):
        if (assets / sub).exists():
            os.symlink(assets / sub, staging / sub)
    (staging / "sawyer_xyz").mkdir()
    (staging / "sawyer_xyz" / name).write_text(text)
    try:  # whole or absent: a process building the same scene at the same moment uses the first one's
        os.rename(staging, root)
    except OSError:
        if out.is_file():
            shutil.rmtree(staging, ignore_errors=True)
        else:  # a folder left incomplete (a temporary-files cleaner took the scene): replace it
            shutil.rmtree(root, ignore_errors=True)
            os.rename(staging, root)
    return str(out)


def metaworld_scene(base: str) -> str:
    """The text of one of MetaWorld's Sawyer scenes."""
    return Path(full_V3_path_for(f"sawyer_xyz/{base}")).read_text()


@functools.cache
def obstructed_push_xml(radius_m: float, half_height_m: float) -> str:
    """Path of push-v3's scene with a static vase body, created once per process."""
    text = metaworld_scene("sawyer_push_v3.xml")
    vase = _VASE_XML.format(
        body=VASE_BODY,
        radius=radius_m,
        half_height=half_height_m,
        neck_z=half_height_m + 0.008,
        neck_r=radius_m * 0.5,
        neck_hh=0.008,
    )
    if "</worldbody>" not in text:
        raise RuntimeError("MetaWorld's push-v3 scene changed shape: no </worldbody> to add the vase to")
    text = text.replace("</worldbody>", vase + "    </worldbody>", 1)
    return write_scene("sawyer_push_v3.xml", "farl_obstructed_push.xml", text)
