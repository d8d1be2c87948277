"""Episode bags: written atomically, read back by farl and by readers that know nothing of farl."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from rosbags.highlevel import AnyReader

from farl_common import messages as M
from farl_common.bags import PARTIAL_DIR, BagError, EpisodeBagWriter, load_dataset, read_episode
from farl_common.episode_messages import EpisodeMessages
from farl_common.messages import TypestoreFactory
from farl_common.topics import DEFAULT_TOPICS, TOPIC_TYPES


def write_episode(path: Path, n: int = 5, storage: str = "mcap", kind: str = "task", fail_at: int | None = None):
    f = TypestoreFactory()
    rec = EpisodeMessages(f, task="fragile_push_wall", kind=kind, episode=0, seed=7, layout=[("a", 2), ("b", 1)])
    states = np.arange((n + 1) * 3, dtype=float).reshape(n + 1, 3)
    with EpisodeBagWriter(path, storage=storage, metadata={"kind": kind}) as w:
        w.write(DEFAULT_TOPICS["episode_event"], TOPIC_TYPES["episode_event"], rec.start(1), 1)
        for k in range(n):
            t = 1 + k * 10
            w.write(DEFAULT_TOPICS["state"], TOPIC_TYPES["state"], rec.state(t, k, states[k]), t)
            w.write(
                DEFAULT_TOPICS["action_executed"],
                TOPIC_TYPES["action_executed"],
                rec.action(t, k, np.full(4, k / 10)),
                t,
            )
            failed = fail_at == k
            fb = rec.feedback(
                t + 10,
                k,
                1.0 + k,
                {"cost": float(failed), "failure": failed, "success": False},
                failed,
                k == n - 1 and not failed,
            )
            w.write(DEFAULT_TOPICS["step_feedback"], TOPIC_TYPES["step_feedback"], fb, t + 10)
            if failed:
                n = k + 1
                break
        w.write(DEFAULT_TOPICS["state"], TOPIC_TYPES["state"], rec.state(1 + n * 10, n, states[n]), 1 + n * 10)
        w.write(DEFAULT_TOPICS["episode_event"], TOPIC_TYPES["episode_event"], rec.end(1 + n * 10), 1 + n * 10)
    return states


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_round_trip_aligns_transitions(tmp_path, storage):
    states = write_episode(tmp_path / "ep", storage=storage)
    ep = read_episode(tmp_path / "ep")
    assert len(ep) == 5 and ep.kind == "task" and ep.task == "fragile_push_wall" and ep.seed == 7
    np.testing.assert_array_equal(ep.obs, states[:5])
    np.testing.assert_array_equal(ep.next_obs, states[1:6])
    np.testing.assert_allclose(ep.action[:, 0], np.arange(5) / 10)
    np.testing.assert_array_equal(ep.reward, [1, 2, 3, 4, 5])
    assert ep.timeout[-1] and not ep.done.any() and ep.outcome == "timeout"
    assert ep.layout == [("a", 2), ("b", 1)]


def test_failure_episode_is_done_with_cost(tmp_path):
    write_episode(tmp_path / "ep", n=6, fail_at=2, kind="failure")
    ep = read_episode(tmp_path / "ep")
    assert len(ep) == 3 and ep.done[-1] and ep.cost[-1] == 1.0 and ep.failed and ep.outcome == "failure"


def test_plain_rosbags_reads_without_farl_typestore(tmp_path):
    write_episode(tmp_path / "ep")
    with AnyReader([tmp_path / "ep"]) as reader:  # types come from the definitions stored in the bag
        conns = [c for c in reader.connections if c.topic == "/farl/state"]
        msgs = [reader.deserialize(raw, c.msgtype) for c, _, raw in reader.messages(connections=conns)]
    assert [int(m.step) for m in msgs] == list(range(6))
    assert list(msgs[0].layout_names) == ["a", "b"]


def test_mcap_reader_decodes_without_farl(tmp_path):
    from mcap_ros2.reader import read_ros2_messages

    write_episode(tmp_path / "ep")
    files = list((tmp_path / "ep").glob("*.mcap"))
    assert len(files) == 1 and files[0].name == "ep.mcap"
    seen = {}
    for m in read_ros2_messages(str(files[0])):
        seen.setdefault(m.channel.topic, []).append(m.ros_msg)
    assert len(seen["/farl/step_feedback"]) == 5
    assert [round(x.reward) for x in seen["/farl/step_feedback"]] == [1, 2, 3, 4, 5]
    assert seen["/farl/episode_event"][-1].outcome == "timeout"


def test_writer_is_atomic(tmp_path):
    w = EpisodeBagWriter(tmp_path / "ep")
    w.write("/x", "std_msgs/msg/UInt32", TypestoreFactory().new("std_msgs/msg/UInt32", data=1), 1)
    assert not (tmp_path / "ep").exists() and (tmp_path / PARTIAL_DIR / "ep").exists()
    with pytest.raises(BagError):  # a reader never takes the partial bag for an episode
        load_dataset(tmp_path)
    w.abort()
    assert not (tmp_path / "ep").exists() and not (tmp_path / PARTIAL_DIR).exists()
    with pytest.raises(RuntimeError):
        with EpisodeBagWriter(tmp_path / "ep2"):
            raise RuntimeError("crash mid-episode")
    assert list(tmp_path.iterdir()) == []


def test_writer_refuses_to_overwrite(tmp_path):
    write_episode(tmp_path / "ep")
    with pytest.raises(FileExistsError, match="ep"):
        EpisodeBagWriter(tmp_path / "ep")


def test_corrupt_bag_is_named_and_the_others_still_load(tmp_path):
    for i in range(3):
        write_episode(tmp_path / f"ep{i}")
    mcap = tmp_path / "ep1" / "ep1.mcap"
    mcap.write_bytes(mcap.read_bytes()[: mcap.stat().st_size // 3])  # truncated, as by a full disk
    with pytest.raises(BagError) as err:
        read_episode(tmp_path / "ep1")
    line = str(err.value)
    assert "\n" not in line and line.startswith(str(tmp_path / "ep1"))
    with pytest.warns(UserWarning, match="ep1"):
        ds = load_dataset(tmp_path)
    assert len(ds.episodes) == 2 and len(ds) == 10 and len(ds.errors) == 1
    with pytest.raises(BagError, match="ep1"):
        load_dataset(tmp_path, strict=True)


def test_garbage_and_missing_files(tmp_path):
    bag = tmp_path / "junk"
    bag.mkdir()
    (bag / "metadata.yaml").write_text("not: a: bag")
    with pytest.raises(BagError, match="junk"):
        read_episode(bag)
    with pytest.raises(BagError, match="no such bag"):
        read_episode(tmp_path / "nope")
    with pytest.raises(FileNotFoundError):
        load_dataset(tmp_path / "nope")


def test_dataset_from_demos_selects_kinds(demo_dir):
    ds = load_dataset(demo_dir)
    assert {e.kind for e in ds.episodes} == {"task", "recovery", "failure"}
    fail = ds.select(["failure"])
    assert fail.cost.sum() == 2 and fail.done.sum() == 2
    # episode_index points into the selected episodes, not the full list
    assert [fail.episodes[i].kind for i in np.unique(fail.episode_index)] == ["failure"] * len(fail.episodes)
    np.testing.assert_array_equal(fail.obs, np.concatenate([e.obs for e in fail.episodes]))
    sizes = np.bincount(fail.episode_index)
    assert sizes.tolist() == [len(e) for e in fail.episodes]
    assert ds.obs.dtype == np.float32 and ds.obs.shape[1] == 39 and ds.action.shape[1] == 4
    np.testing.assert_array_equal(ds.obs[1:5], ds.next_obs[0:4])  # consecutive within an episode
    assert np.all(np.isfinite(ds.obs)) and len(ds) == len(ds.reward) == len(ds.kind)


def test_copied_bag_still_reads(tmp_path, demo_dir):
    src = sorted(demo_dir.glob("task_*"))[0]
    shutil.copytree(src, tmp_path / src.name)
    assert len(read_episode(tmp_path / src.name)) > 50


def test_make_event_validates_kind_and_outcome():
    f = TypestoreFactory()
    with pytest.raises(ValueError, match="kind"):
        M.make_event(f, t_ns=0, start=True, episode=0, task="x", kind="exploration")
    with pytest.raises(ValueError, match="outcome"):
        M.make_event(f, t_ns=0, start=False, episode=0, task="x", kind="task", outcome="great")


def test_step_messages_carry_stamp_episode_and_step_and_states_the_world_frame():
    f = TypestoreFactory()
    state = M.make_state(f, t_ns=2_500_000_000, task="x", episode=3, step=7, layout=[("hand", 3)], values=[0, 0, 1])
    action = M.make_action(f, **M.answering(state, 2_600_000_000), values=[0, 0, 0, 0], source="policy")
    assert (state.header.stamp.sec, state.header.stamp.nanosec, state.header.frame_id) == (2, 500_000_000, "world")
    assert (action.episode, action.step, action.header.stamp.nanosec, action.header.frame_id) == (3, 7, 600_000_000, "")


def test_finite_vector_refuses_nan_and_wrong_size():
    assert M.finite_vector([1, 2], 2, "x").dtype == np.float64
    with pytest.raises(ValueError, match="non-finite"):
        M.finite_vector([1, np.inf], 2, "x")
    with pytest.raises(ValueError, match="expected 2"):
        M.finite_vector([1, 2, 3], 2, "x")


def test_bags_store_farl_qos_so_bag_play_offers_events_transient_local(tmp_path):
    import yaml

    from farl_bringup.sim_graph import run_sim
    from farl_common.config import task_config

    cfg = task_config("fragile_push_wall")
    cfg.policy.kind = "scripted"
    cfg.robot.horizon_steps = 3
    cfg.recorder.out_dir = str(tmp_path / "bags")
    (bag,) = run_sim(cfg, episodes=1, seed=0).bags
    meta = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    qos = {
        t["topic_metadata"]["name"]: t["topic_metadata"]["offered_qos_profiles"]
        for t in meta["topics_with_message_count"]
    }
    events, state = qos["/farl/episode_event"], qos["/farl/state"]
    assert "transient_local" in str(events).lower() and "100" in str(events)
    assert "volatile" in str(state).lower() and "reliable" in str(state).lower()


def test_a_full_disk_is_one_line_and_leaves_no_partial_bag(tmp_path):
    """A real `farl demos` process whose files may not grow past 16 KiB (RLIMIT_FSIZE: the writes fail
    as on a full disk): one line naming the bag, exit 2, no half bag anywhere, earlier bags intact."""
    import resource
    import signal
    import subprocess
    import sys

    def small_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a killed process
        resource.setrlimit(resource.RLIMIT_FSIZE, (16 * 1024, 16 * 1024))

    out = tmp_path / "demos"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "farl_bringup.cli",
            "demos",
            "--task",
            "bounded_push",
            "--kind",
            "task",
            "--episodes",
            "2",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        preexec_fn=small_files,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert "could not write the bag (File too large); this episode is not saved" in last
    assert "Traceback" not in proc.stderr
    assert not list(tmp_path.rglob(PARTIAL_DIR))


def test_a_bag_read_again_comes_from_the_cache_and_a_changed_bag_does_not(tmp_path, monkeypatch):
    import dataclasses

    from farl_common import bags

    cache = tmp_path / "cache"
    monkeypatch.setenv("FARL_CACHE_DIR", str(cache))
    write_episode(tmp_path / "ep", n=6, fail_at=3)
    first = read_episode(tmp_path / "ep")
    assert len(list(cache.glob("*.episode"))) == 1
    parses = []
    real = bags._parse_episode
    monkeypatch.setattr(bags, "_parse_episode", lambda *a: parses.append(a) or real(*a))
    again = read_episode(tmp_path / "ep")
    assert parses == []  # served from the cache, equal in every field
    for f in dataclasses.fields(first):
        a, b = getattr(first, f.name), getattr(again, f.name)
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b, err_msg=f.name)  # NaN risks (no shield) compare equal
            assert a.dtype == b.dtype, f.name
        else:
            assert a == b, f.name
    shutil.copytree(tmp_path / "ep", tmp_path / "copy")  # same bytes elsewhere: same entry, its own path
    assert read_episode(tmp_path / "copy").path == tmp_path / "copy" and parses == []
    shutil.rmtree(tmp_path / "ep")
    write_episode(tmp_path / "ep", n=4)  # the same name, other content: parsed afresh
    assert len(read_episode(tmp_path / "ep")) == 4 and len(parses) == 1
    mcap = tmp_path / "copy" / "ep.mcap"  # rosbag2 names the file after the bag as written
    mcap.write_bytes(mcap.read_bytes()[: mcap.stat().st_size // 3])
    with pytest.raises(BagError, match="copy"):  # a damaged bag is never answered from the cache
        read_episode(tmp_path / "copy")
    for entry in cache.glob("*.episode"):
        entry.write_bytes(b"torn")  # a damaged cache costs a parse, not a wrong answer
    assert len(read_episode(tmp_path / "ep")) == 4
    monkeypatch.setenv("FARL_CACHE_DIR", "off")
    assert len(read_episode(tmp_path / "ep")) == 4
    monkeypatch.setenv("FARL_CACHE_DIR", "/proc/farl-cache")  # unwritable: still reads
    assert len(read_episode(tmp_path / "ep")) == 4
