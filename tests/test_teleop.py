"""Teleoperation: SpaceMouse decoding (fake HID reports through pyspacemouse), keyboard, `farl record`
in sim mode for each kind, unplugging, review, and a person taking over during online learning."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from farl_bringup.graph_spec import graph_spec
from farl_bringup.record import record_config, run_record
from farl_common.bags import iter_bag_paths, load_dataset, read_episode
from farl_common.config import task_config
from farl_common.obs_layout import HAND
from farl_common.runtime.inprocess import InProcessRuntime
from farl_teleop.devices import DeviceLost, Keyboard, SpaceMouse
from farl_teleop.mapping import AxisMapping, ButtonPresses
from farl_teleop.operators import DeviceOperator
from tests.mocks.fake_spacemouse import FakeHID, encode_axes, fake_spacemouse
from tests.mocks.scripted_keys import ScriptedKeys

pytest.importorskip("pyspacemouse")


def spacemouse_operator(hid: FakeHID, axis_map=("x", "y", "z"), deadband: float = 0.1) -> DeviceOperator:
    mapping = AxisMapping.from_names(list(axis_map), deadband, 1.0)
    return DeviceOperator(SpaceMouse(factory=lambda: fake_spacemouse(hid)), mapping, long_press_s=0.8)


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


# axes, deadband, mapping ----------------------------------------------------------------------------
def at(op: DeviceOperator, clock: Clock, t: float):
    clock.t = t
    return op.poll(t, None)


def test_reports_decode_to_base_frame_displacements_with_deadband_and_mapping():
    clock = Clock()
    hid = FakeHID(clock).move(0.0, x=0.05, y=-0.08, z=0.02).move(1.0, x=0.55, y=-1.0, z=0.0)
    hid.move(2.0, x=0.55, yaw=0.9).move(3.0, x=2.0)
    op = spacemouse_operator(hid, axis_map=("y", "-x", "z"))
    op.open()
    assert at(op, clock, 0.0).action is None  # everything inside the deadband: hands off
    inp = at(op, clock, 1.0)
    # base x <- device y = -1 (full), base y <- -device x = -0.55 -> -(0.55 - 0.1) / 0.9 = -0.5
    np.testing.assert_allclose(inp.action[:3], [-1.0, -0.5, 0.0], atol=2e-3)
    assert inp.action[3] == -1.0  # the gripper starts open
    inp = at(op, clock, 2.0)  # yaw is not mapped: it moves nothing
    np.testing.assert_allclose(inp.action[:3], [0.0, -0.5, 0.0], atol=2e-3)
    assert at(op, clock, 3.0).action[1] == -1.0  # beyond full scale is clipped to one step


def test_one_poll_drains_every_waiting_report():
    clock = Clock()
    hid = FakeHID(clock).at(0.0, *encode_axes(x=0.3), *encode_axes(x=0.9), *encode_axes(z=0.6))
    op = spacemouse_operator(hid)
    op.open()
    inp = op.poll(0.0, None)
    np.testing.assert_allclose(inp.action[:3], [0.0, 0.0, (0.6 - 0.1) / 0.9], atol=2e-3)  # the latest of each channel


def test_axis_map_and_deadband_are_validated():
    with pytest.raises(ValueError, match="not a device axis"):
        AxisMapping.from_names(["x", "q", "z"], 0.1, 1.0)
    with pytest.raises(ValueError, match="three entries"):
        AxisMapping.from_names(["x", "y"], 0.1, 1.0)
    with pytest.raises(ValueError, match="deadband"):
        AxisMapping.from_names(["x", "y", "z"], 1.0, 1.0)


def test_buttons_short_and_long_presses_read_on_release():
    b = ButtonPresses(long_press_s=0.8)
    assert b.update((1, 0), 0.0) == []
    assert b.update((0, 0), 0.2) == ["b0"]
    assert b.update((0, 1), 1.0) == []
    assert b.update((0, 1), 1.5) == []
    assert b.update((0, 0), 1.9) == ["b1_long"]
    assert b.update((1, 1), 2.0) == [] and sorted(b.update((0, 0), 2.1)) == ["b0", "b1"]


def test_gripper_toggles_and_holds_while_hands_are_off():
    clock = Clock()
    hid = FakeHID(clock).press(0.0, 1).move(1.0, z=0.5)
    op = spacemouse_operator(hid)
    op.open()
    assert op.poll(0.0, None).presses == []
    clock.t = 0.2
    inp = op.poll(0.2, None)
    assert inp.presses == ["b1"]
    op.toggle_gripper()
    clock.t = 1.0
    assert op.poll(1.0, None).action[3] == 1.0


def test_unplugged_spacemouse_raises_device_lost_in_one_line():
    clock = Clock()
    hid = FakeHID(clock)
    hid.unplug_at = 0.5
    op = spacemouse_operator(hid)
    op.open()
    op.poll(0.0, None)
    clock.t = 0.6
    with pytest.raises(DeviceLost, match="unplugged") as err:
        op.poll(0.6, None)
    assert "\n" not in str(err.value)
    assert hid.closed == 1


def test_keyboard_axis_keys_hold_for_their_time_and_other_keys_pass_through():
    clock = Clock()
    keys = ScriptedKeys(clock, [(0.0, "i"), (0.0, "e"), (1.0, "L"), (1.0, "u")])
    op = DeviceOperator(Keyboard(hold_s=0.3, keys=keys), AxisMapping.from_names(["x", "y", "z"], 0.1, 1.0))
    op.open()
    inp = op.poll(0.0, None)
    np.testing.assert_allclose(inp.action[:3], [1.0, 0.0, 0.0])
    assert inp.presses == ["e"]
    clock.t = 0.5
    assert op.poll(0.5, None).action is None  # released after hold_s
    clock.t = 1.0
    np.testing.assert_allclose(op.poll(1.0, None).action[:3], [0.0, -1.0, 1.0])


# farl record, sim mode ---------------------------------------------------------------------------
def record(tmp_path: Path, kind: str, hid_script, episodes: int = 1, until_s: float = 60.0, live_view=None, **teleop):
    cfg = record_config("fragile_push_wall", "sim")
    cfg.teleop = dataclasses.replace(cfg.teleop, **teleop)
    rt = InProcessRuntime()
    hid = FakeHID(lambda: rt.now_ns / 1e9)
    hid_script(hid)
    result = run_record(
        cfg,
        kind=kind,
        device="spacemouse",
        out=tmp_path / "demos",
        episodes=episodes,
        operator=spacemouse_operator(hid),
        status_line=False,
        until_s=until_s,
        runtime=rt,
        live_view=live_view,
    )
    return result, rt


def inspected(folder: Path, capsys) -> list[list[str]]:
    """`farl inspect`'s episode lines, split into columns."""
    from farl_bringup.inspect_bags import inspect_bags

    capsys.readouterr()
    assert inspect_bags(folder) == 0
    lines = capsys.readouterr().out.splitlines()
    return [line.split() for line in lines[1:] if line.strip() and "_ep" in line]


def test_record_task_demo_into_a_labelled_bag(tmp_path, capsys):
    def script(h):
        h.press(1.0, 0)  # start
        h.move(2.0, y=0.8).move(5.0, y=0.0)
        h.press(6.0, 0)  # stop
        h.press(7.0, 0)  # keep

    result, _ = record(tmp_path, "task", script)
    assert len(result.bags) == 1 and not result.discarded
    ep = read_episode(result.bags[0])
    assert ep.kind == "task" and ep.outcome in ("timeout", "success")
    assert 20 <= len(ep) <= 30  # about 5 s at 5 Hz
    assert np.all(ep.source == 2)  # every action the person's (SOURCE_TELEOP)
    moving = ep.action[:, 1] > 0.5
    assert moving.sum() >= 10  # device y drove base y
    assert np.all(np.diff(ep.obs[moving, 1]) >= -1e-3)  # and the hand went that way
    assert load_dataset(tmp_path / "demos", kinds=["task"]).episodes[0].kind == "task"
    [row] = inspected(tmp_path / "demos", capsys)
    assert row[1:3] == ["task", "fragile_push_wall"] and row[-2:] == ["no", "teleop:spacemouse"]


def test_record_failure_demo_marked_with_a_long_press(tmp_path, capsys):
    def script(h):
        h.press(1.0, 0)
        h.move(2.0, z=-0.5).move(3.0, z=0.0)
        h.press(4.0, 0, hold_s=1.0)  # long press on the left button: failure
        h.press(6.0, 0)  # keep

    result, rt = record(tmp_path, "failure", script)
    ep = read_episode(result.bags[0])
    # The long press arrives as a failure mark and ends the episode; in sim the simulator, which finds
    # nothing broken (the hand only moved down), gives the outcome (a real arm takes the person's word).
    assert any("episode 0 marked failure, but the simulator finds no failure" in r.text for r in rt.logs)
    assert ep.kind == "failure" and ep.outcome == "timeout" and ep.cost.sum() == 0 and len(ep) < 200
    [row] = inspected(tmp_path / "demos", capsys)
    assert row[1] == "failure" and row[-3:] == ["timeout", "no", "teleop:spacemouse"]
    assert len(load_dataset(tmp_path / "demos", kinds=["failure"])) == len(ep)


def test_record_recovery_demo_starts_after_the_unrecorded_approach(tmp_path, capsys):
    def script(h):
        h.press(1.0, 0)  # home, approach begins (not recorded)
        h.move(1.5, y=1.0).move(4.0, y=0.0)  # about 12 steps towards the wall
        h.press(4.5, 0)  # the recording starts here
        h.move(5.0, y=-1.0).move(7.0, y=0.0)
        h.press(8.0, 0)  # stop
        h.press(9.0, 0)  # keep

    result, _ = record(tmp_path, "recovery", script)
    ep = read_episode(result.bags[0])
    assert ep.kind == "recovery"
    assert 15 <= len(ep) <= 22  # 4.6 s .. 8 s, not the approach's steps before
    home_y = 0.6  # FailureBench's hand starts near y 0.6; the approach carried it well beyond
    assert ep.obs[0, HAND][1] > home_y + 0.05
    assert np.all(ep.action[ep.action[:, 1] != 0, 1] < 0)  # only the way back is in the bag
    ds = load_dataset(tmp_path / "demos", kinds=["recovery"])
    assert len(ds) == len(ep)
    [row] = inspected(tmp_path / "demos", capsys)
    assert row[1] == "recovery" and int(row[3]) == len(ep)


def test_review_discard_and_rerecord(tmp_path):
    def script(h):
        h.press(1.0, 0)
        h.press(3.0, 0)  # stop
        h.press(4.0, 1)  # discard (right button)
        h.press(5.0, 0)
        h.press(7.0, 0)
        h.press(8.0, 0, hold_s=1.0)  # rerecord (long left)
        h.press(10.0, 0)
        h.press(12.0, 0)
        h.press(13.0, 0)  # keep

    result, _ = record(tmp_path, "task", script)
    assert len(result.discarded) == 2 and all(not p.exists() for p in result.discarded)
    bags = list(iter_bag_paths(tmp_path / "demos"))
    assert bags == result.bags and len(bags) == 1
    ep = read_episode(bags[0])
    assert bags[0].name.endswith("ep00002")
    assert ep.seed == 1  # the rerecorded episode repeats the seed of the one it replaced (episode 1)


def test_unplug_mid_episode_holds_ends_and_keeps_the_episode(tmp_path, caplog):
    def script(h):
        h.press(1.0, 0)
        h.move(1.5, y=0.8)
        h.unplug_at = 4.0

    result, rt = record(tmp_path, "task", script, until_s=8.0)
    robot = next(n for n in rt.nodes if type(n).__name__ == "RobotNode")
    teleop = next(n for n in rt.nodes if type(n).__name__ == "TeleopNode")
    assert teleop.unplugs == 1 and teleop.kept == 1
    assert len(result.bags) == 1
    ep = read_episode(result.bags[0])
    assert ep.outcome == "timeout" and 12 <= len(ep) <= 17  # ended within a step of the unplug
    logs = [r.text for r in rt.logs if r.level == "error"]
    assert any("unplugged" in t and "holds" in t and "kept" in t for t in logs)
    assert robot.rec is None  # no episode running on a device that is gone


def test_a_replugged_spacemouse_records_again(tmp_path):
    def script(h):
        h.unplug_at, h.replug_at = 0.5, 2.0
        h.press(4.0, 0).press(6.0, 0).press(7.0, 0)

    result, rt = record(tmp_path, "task", script, until_s=20.0)
    assert len(result.bags) == 1
    assert any("is back" in r.text for r in rt.logs)


def test_unplug_with_discard_configured_keeps_nothing(tmp_path):
    def script(h):
        h.press(1.0, 0)
        h.unplug_at = 3.0

    result, _ = record(tmp_path, "task", script, until_s=6.0, on_unplug="discard")
    assert not result.bags and len(result.discarded) == 1


def test_keyboard_records_the_same_way(tmp_path):
    cfg = record_config("fragile_push_wall", "sim")
    rt = InProcessRuntime()
    clock = lambda: rt.now_ns / 1e9
    keys = ScriptedKeys(clock, [(1.0, "e"), *((1.2 + 0.2 * k, "j") for k in range(10)), (4.0, "s"), (5.0, "a")])
    op = DeviceOperator(Keyboard(0.3, keys), AxisMapping.from_names(["x", "y", "z"], 0.1, 1.0))
    result = run_record(
        cfg,
        kind="task",
        device="keyboard",
        out=tmp_path / "k",
        episodes=1,
        operator=op,
        status_line=False,
        until_s=30.0,
        runtime=rt,
    )
    ep = read_episode(result.bags[0])
    # s ends the episode; the outcome is the simulator's, which finds the puck short of the goal
    assert len(ep) < 200 and ep.outcome == "timeout"
    assert (ep.action[:, 1] == 1.0).sum() >= 8


def test_interrupt_mid_episode_keeps_finished_bags_and_no_half_bag(tmp_path):
    class Interrupting(DeviceOperator):
        def poll(self, now_s, obs):
            if now_s >= 10.0:
                raise KeyboardInterrupt
            return super().poll(now_s, obs)

    cfg = record_config("fragile_push_wall", "sim")
    rt = InProcessRuntime()
    hid = FakeHID(lambda: rt.now_ns / 1e9)
    hid.press(1.0, 0).press(3.0, 0).press(4.0, 0)  # one episode recorded and kept
    hid.press(6.0, 0)  # the second is running at the interrupt
    op = Interrupting(SpaceMouse(factory=lambda: fake_spacemouse(hid)), AxisMapping.from_names(["x", "y", "z"], 0.1, 1))
    with pytest.raises(KeyboardInterrupt):
        run_record(
            cfg, kind="task", device="spacemouse", out=tmp_path / "d", operator=op, status_line=False, runtime=rt
        )
    bags = list(iter_bag_paths(tmp_path / "d"))
    assert len(bags) == 1 and read_episode(bags[0]).outcome == "timeout"
    assert not any((tmp_path / "d" / ".farl-partial").glob("*"))  # the half episode is gone, not left looking whole


def test_record_refuses_what_it_cannot_do():
    from farl_common.config import ConfigError

    with pytest.raises(ConfigError, match="franky"):
        record_config("fragile_push_wall", "real", str(Path(__file__).parents[1] / "config/fragile_push_wall.yaml"))
    cfg = task_config("fragile_push_wall")
    cfg.policy.kind, cfg.episodes.kind = "teleop", "online"
    with pytest.raises(ConfigError, match=r"episodes\.kind"):
        graph_spec(cfg)


# takeover during online learning ----------------------------------------------------------------
def takeover_graph(tmp_path: Path, takeover_end: str, episodes: int = 2):
    from farl_robot.robot_node import RobotNode
    from farl_sim.scripted_policy_node import ScriptedPolicyNode
    from farl_teleop.teleop_node import TeleopNode

    cfg = task_config("fragile_push_wall")
    cfg.policy.kind = "scripted"
    cfg.recorder.out_dir = str(tmp_path / "bags")
    cfg.teleop = dataclasses.replace(
        cfg.teleop, takeover=True, device="scripted", takeover_end=takeover_end, person_takeover_m=0.05
    )
    with InProcessRuntime() as rt:
        nodes = []
        for spec in graph_spec(cfg, episodes, 0):
            p = spec.params
            if spec.node_class is ScriptedPolicyNode:
                p = dataclasses.replace(p, script="failure")  # a policy that heads for the wall
            nodes.append(rt.add(spec.node_class(p), spec.topics))
        rt.run()
    robot = next(n for n in nodes if isinstance(n, RobotNode))
    teleop = next(n for n in nodes if isinstance(n, TeleopNode))
    return robot, teleop, [read_episode(b) for b in iter_bag_paths(tmp_path / "bags")]


def test_takeover_is_recorded_counted_and_kept_as_recovery_data(tmp_path):
    _, teleop, eps = takeover_graph(tmp_path, "resume")
    assert teleop.takeovers_by_episode and all(teleop.takeovers_by_episode.values())
    for ep in eps:
        took = ep.intervened
        assert took.any() and ep.ir_failure
        assert np.all(ep.source[took] == 2)
        # the person's actions replaced the policy's (the failure driver pushes towards +y, at the wall)
        assert np.any(np.abs(ep.action[took] - ep.proposed_action[took]).max(axis=1) > 0.1)
        assert took[-1] or not took.all()  # the policy acted again after the release (resume)
    rec = load_dataset(tmp_path / "bags", kinds=["recovery"])
    assert len(rec) == sum(int(ep.intervened.sum()) for ep in eps)
    assert all(e.kind == "recovery" for e in rec.episodes)


def test_takeover_can_end_the_episode(tmp_path):
    _, _, eps = takeover_graph(tmp_path, "end_episode", episodes=3)
    rescued = [ep for ep in eps if not ep.failed]  # a rescue can fail too: then the failure ends it
    assert rescued and all(ep.intervened.any() and ep.ir_failure for ep in eps)
    for ep in rescued:
        took = np.flatnonzero(ep.intervened)
        # ends at the release (the person held the arm, then rested it for release_s), not by the
        # horizon: the last step is not terminal, so PPO bootstraps from it
        assert len(ep) - 1 - took[-1] <= 1 and not ep.done[-1] and len(ep) < 200


def test_learner_leaves_takeover_steps_out_of_the_policy_term(tmp_path):
    _, _, eps = takeover_graph(tmp_path, "resume", episodes=1)
    ep = eps[0]
    not_own = ep.swapped | ep.intervened
    assert not_own.sum() == ep.intervened.sum() > 0


def test_finetune_with_a_scripted_person(tmp_path):
    import torch

    from farl_common.obs_layout import OBS_DIM
    from farl_learning.finetune_rollouts import PPOTrainer
    from farl_learning.nets import GaussianPolicy, ValueNet
    from farl_learning.ppo import PPOConfig
    from farl_teleop.takeover import PersonSettings

    torch.manual_seed(0)
    policy = GaussianPolicy(OBS_DIM, 4, 32)
    cfg = PPOConfig(total_steps=300, num_envs=2, steps_per_env=100, horizon_steps=100, value_warmup_updates=10)
    trainer = PPOTrainer(
        "fragile_push_wall",
        policy,
        ValueNet(OBS_DIM, 32),
        cfg,
        out_dir=tmp_path / "ft",
        # a person who grabs at once (1 m from the hazard), carries for 2 s and rests 1 s: 3 s, 15 steps
        person=PersonSettings(takeover_m=1.0, carry_s=2.0, release_s=1.0, takeover_end="end_episode"),
    )
    trainer.train(progress=False)
    trainer.close()
    eps = trainer.episodes
    assert eps and all(e["takeover_steps"] > 0 and e["failure"] for e in eps)  # a takeover is an IR failure
    assert all(e["length"] <= 17 for e in eps)  # ended by the release, not the 100-step horizon
    bags = list(iter_bag_paths(tmp_path / "ft" / "takeovers"))
    assert bags and all(read_episode(b).kind == "recovery" for b in bags)


def test_farl_record_without_a_device_says_so_in_one_line(tmp_path, capsys):
    from farl_bringup.cli import main

    code = main(["record", "--task", "fragile_push_wall", "--kind", "task", "--out", str(tmp_path / "d")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "no SpaceMouse" in err[0] and "--device keyboard" in err[0]
    code = main(["record", "--task", "fragile_push_wall", "--kind", "task", "--device", "keyboard", "--out", "x"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "interactive terminal" in err[-1]
    assert not (tmp_path / "d").exists() or not list(iter_bag_paths(tmp_path / "d"))


KILL_SCRIPT = """
import sys
from farl_bringup.record import record_config, run_record
from farl_common.runtime.inprocess import InProcessRuntime
from farl_teleop.devices import SpaceMouse
from farl_teleop.mapping import AxisMapping
from farl_teleop.operators import DeviceOperator
from tests.mocks.fake_spacemouse import FakeHID, fake_spacemouse

rt = InProcessRuntime(realtime=True, start_ns=0)
hid = FakeHID(lambda: rt.now_ns / 1e9)
for k in range(100):  # an episode every 3 s: start, stop after 1.6 s, keep
    t = 0.2 + 3.0 * k
    hid.press(t, 0).move(t + 0.2, y=0.5).press(t + 1.6, 0).press(t + 2.2, 0)
op = DeviceOperator(SpaceMouse(factory=lambda: fake_spacemouse(hid)), AxisMapping.from_names(["x", "y", "z"], 0.1, 1))
cfg = record_config("fragile_push_wall", "sim")
cfg.rate_hz = 20.0  # 4x the real rate: more episodes per wall-clock second
run_record(cfg, kind="task", device="spacemouse", out=sys.argv[1], operator=op, status_line=False, runtime=rt)
"""


@pytest.mark.slow
def test_sigkill_mid_recording_leaves_only_whole_bags(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "demos"
    proc = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, str(out)],
        cwd=Path(__file__).parents[1],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(list(out.glob("*_task_*"))) < 2:
            time.sleep(0.2)
        time.sleep(1.3)  # into the next episode
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    bags = list(iter_bag_paths(out))
    assert len(bags) >= 2, proc.stderr.read().decode()[-2000:]
    for b in bags:
        assert read_episode(b).kind == "task"  # every visible bag is whole and readable
    assert len(load_dataset(out, strict=True).episodes) == len(bags)
