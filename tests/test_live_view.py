"""The live view (rerun): each episode's `.rrd` beside its bag holds the scene, the shield's look-ahead
and decisions, and the values the bag holds."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from test_learned_graph import learned_config, run_copy  # noqa: F401 - the fixture is used by name

from farl_bringup.sim_graph import run_sim
from farl_common.bags import read_episode
from farl_common.obs_layout import HAND

pytest.importorskip("rerun")


def read_rrd(path) -> dict[str, dict[str, list]]:
    """Entity path -> column -> values (each row a logged value; `step` its step), static rows too."""
    from rerun.chunk import RrdReader

    out: dict[str, dict[str, list]] = {}
    for chunk in RrdReader(path).stream().collect().stream().to_chunks():
        batch = chunk.to_record_batch()
        cols = out.setdefault(chunk.entity_path, {})
        for name in batch.column_names:
            if name.startswith("rerun.") or name == "log_time":
                continue
            cols.setdefault(name, []).extend(batch.column(name).to_pylist())
    return out


def by_step(entity: dict[str, list], column: str) -> dict[int, object]:
    return dict(zip(entity["step"], entity[column], strict=True))


def test_farl_sim_view_saves_each_episode_beside_its_bag_with_what_the_bag_holds(run_copy, tmp_path):  # noqa: F811
    cfg = learned_config(tmp_path, run_copy, horizon=15, min_new_steps=10**6)
    result = run_sim(cfg, episodes=2, seed=0, view="none")
    bags = sorted(result.bags)
    rrds = sorted((tmp_path / "bags").glob("*.rrd"))
    assert [r.name for r in rrds] == [f"{b.name}.rrd" for b in bags]
    assert not list((tmp_path / "bags").glob(".live_view*")), "a recording was left half-made"
    check_recordings(bags, rrds, cfg.shield.settings(str(run_copy)).horizon_steps)

    # farl replay --view: the same recordings from the bags alone, the look-ahead from the run's critic
    from farl_bringup.replay import replay

    for rrd in rrds:
        rrd.unlink()
    replay(tmp_path / "bags", run_copy, cfg.shield.settings(str(run_copy)), view="none")
    check_recordings(bags, sorted((tmp_path / "bags").glob("*.rrd")), cfg.shield.settings(str(run_copy)).horizon_steps)


def check_recordings(bags, rrds, horizon: int) -> None:
    assert [r.name for r in rrds] == [f"{b.name}.rrd" for b in bags]
    for bag, rrd in zip(bags, rrds, strict=True):
        ep = read_episode(bag)
        data = read_rrd(rrd)
        for entity in (
            "/scene/envelope",
            "/scene/hazard",
            "/scene/hand",
            "/scene/hand_trail",
            "/scene/object",
            "/scene/goal",
            "/scene/imagined",
            "/scene/imagined/states",
            "/shield/C_H",
            "/shield/eps_safe",
            "/events",
            "/policy/version",
        ):
            assert entity in data, f"{entity} missing from {rrd.name}: {sorted(data)}"
        hands = by_step(data["/scene/hand"], "Points3D:positions")
        for t in range(len(ep)):
            np.testing.assert_allclose(hands[t][0], ep.obs[t, HAND], rtol=0, atol=1e-6)  # float32 in rerun
        risks = by_step(data["/shield/C_H"], "Scalars:scalars")
        np.testing.assert_allclose([risks[t][0] for t in range(len(ep))], np.log10(ep.risk), rtol=1e-6)
        paths = by_step(data["/scene/imagined/states"], "Points3D:positions")
        assert len(paths) == len(ep)  # one look-ahead per decision
        first = paths[0]
        assert len(first) == horizon + 1
        np.testing.assert_allclose(first[0], ep.obs[0, HAND], atol=1e-6)  # it starts where the hand is
        texts = data["/events"]["TextLog:text"]
        assert texts[0][0].startswith("fragile_push_wall episode") and texts[-1][0].startswith(
            f"episode {ep_number(bag)} ends: {ep.outcome}"
        )
        assert sum("shield swap" in t[0] for t in texts) == int(ep.swapped.sum())
        assert set(v[0] for v in data["/policy/version"]["Scalars:scalars"]) == {float(ep.policy_version)}


def ep_number(bag) -> int:
    return int(bag.name.rsplit("_ep", 1)[1].split("-")[0])


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_web_viewer_opens_an_episode_in_headless_chromium(run_copy, tmp_path):  # noqa: F811
    """`rerun <bag>.rrd --serve-web`, opened in headless Chromium (software WebGL): the screenshot shows the
    viewer drawing this episode, C_H's red line against eps_safe's among it."""
    import shutil
    import signal
    import subprocess
    import sys
    import time
    import urllib.request

    from PIL import Image

    from farl_bringup.live_view import RISK_COLOUR

    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("no chromium: apt-get install chromium (apt-packages.txt)")
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    cfg = learned_config(tmp_path, run_copy, horizon=15, min_new_steps=10**6)
    run_sim(cfg, episodes=1, seed=0, view="none")
    (rrd,) = (tmp_path / "bags").glob("*.rrd")
    web, grpc = _free_port(), _free_port()
    rerun = Path(sys.executable).with_name("rerun")
    server = subprocess.Popen(
        [str(rerun), str(rrd), "--serve-web", "--web-viewer-port", str(web), "--port", str(grpc)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        env={**os.environ, "CI": "1"},  # rerun sends no usage data on CI
        start_new_session=True,  # `rerun` is a Python launcher of the viewer binary: stop both together
    )
    shot = tmp_path / "web_viewer.png"
    try:
        end = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{web}/", timeout=2).close()
                break
            except OSError:
                assert time.monotonic() < end and server.poll() is None, "the web viewer never answered"
                time.sleep(0.5)
        url = f"http://127.0.0.1:{web}/?url=rerun%2Bhttp%3A%2F%2F127.0.0.1%3A{grpc}%2Fproxy"
        args = ["--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--no-first-run"]
        args += ["--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-quic"]
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=args)
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(url)
            red = 0
            end = time.monotonic() + 90
            while red < 200 and time.monotonic() < end:  # the wasm viewer loads, then fetches the recording
                time.sleep(2)
                page.screenshot(path=str(shot))
                pixels = np.asarray(Image.open(shot).convert("RGB")).reshape(-1, 3).astype(int)
                red = int((np.abs(pixels - RISK_COLOUR).sum(1) < 30).sum())
            browser.close()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    assert red >= 200, f"no C_H line in the viewer after 90 s (screenshot {shot})"


def test_the_camera_image_and_a_takeover_reach_the_episodes_recording(tmp_path):
    """Perception's debug image (the frame with its detections drawn) and a person's takeover, as the live
    view node hears them; an episode whose bag is not kept leaves no recording."""
    from farl_bringup.live_view import LiveViewNode, LiveViewParams
    from farl_common import messages as M
    from farl_common.obs_layout import OBS_DIM
    from farl_common.runtime.inprocess import InProcessRuntime
    from farl_perception.image_messages import color_msg

    rt = InProcessRuntime()
    node = rt.add(LiveViewNode(LiveViewParams(out_dir=str(tmp_path))), {})
    f = rt.msgs
    frame = np.zeros((48, 64, 3), dtype=np.uint8)
    frame[10:20, 10:30] = (255, 0, 0)  # a drawn box
    for ep in (0, 1):
        node.on_episode_event(M.make_event(f, t_ns=0, start=True, episode=ep, task="fragile_push_wall", kind="online"))
        node.on_state(
            M.make_state(f, t_ns=0, task="fragile_push_wall", episode=ep, step=0, layout=[], values=np.zeros(OBS_DIM))
        )
        node.on_image(color_msg(f, frame, 0))
        node.on_action(M.make_action(f, t_ns=0, episode=ep, step=0, values=np.zeros(4), source="teleop"))
        node.on_episode_event(
            M.make_event(f, t_ns=0, start=False, episode=ep, task="fragile_push_wall", kind="online", outcome="timeout")
        )
    bag = tmp_path / "20261207-000000_online_fragile_push_wall_ep00000"
    node.on_episode_recorded(f.new("std_msgs/msg/String", data=str(bag)))  # episode 1's bag was not kept
    rt.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{bag.name}.rrd"]
    data = read_rrd(tmp_path / f"{bag.name}.rrd")
    image = data["/camera/image"]
    assert len(image["step"]) == 1
    assert any("a person acts (takeover)" in t[0] for t in data["/events"]["TextLog:text"])


def test_farl_record_view_keeps_a_recording_beside_each_kept_demonstration(tmp_path):
    from test_teleop import record

    def script(h):
        h.press(1.0, 0)  # start
        h.move(2.0, y=0.8).move(4.0, y=0.0)
        h.press(5.0, 0)  # stop
        h.press(6.0, 0)  # keep

    result, _ = record(tmp_path, "task", script, live_view="none")
    (bag,) = result.bags
    ep = read_episode(bag)
    data = read_rrd(bag.with_name(f"{bag.name}.rrd"))
    hands = by_step(data["/scene/hand"], "Points3D:positions")
    np.testing.assert_allclose([hands[t][0] for t in range(len(ep))], ep.obs[:, HAND], atol=1e-6)
    texts = [t[0] for t in data["/events"]["TextLog:text"]]
    assert texts[0] == "fragile_push_wall episode 0 starts (task, seed 0)"
    assert not any("takeover" in t for t in texts)  # the person acts throughout: a demonstration, not a takeover
