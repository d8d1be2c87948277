"""The graph as `ros2 launch` runs it: each node its own process, parameters through params files that
rcl parses, messages over DDS, started from a folder other than the repository.

Runs under `.venv-ros/bin/python-ros -m pytest -m ros` where scripts/setup_ros.sh installed ROS 2's
launch, launch_ros and ros2cli and colcon-built farl into `.venv-ros/ws`, or under a sourced ROS 2
Jazzy with `ros2_ws` built and its `install/setup.bash` sourced; skipped elsewhere, saying which.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from farl_common.bags import iter_bag_paths, read_episode

pytestmark = pytest.mark.ros

REPO = Path(__file__).resolve().parents[1]
ANSI = re.compile(r"\x1b\[[0-9;]*m")
STALLED = ("no valid action for", "never met its state", "refused action")
"""What the robot and shield log when a step waits on an action that does not come in time."""
LOST = ("no executed action or feedback", "not recorded")
"""What the recorder and robot log when a step or an episode misses its bag."""
NOISE = ("Traceback", "KeyboardInterrupt", "Failed to publish log message", "publisher's context is invalid")
_domains = itertools.count()


def _launch_ready() -> str:
    """Why `ros2 launch farl_bringup` cannot run here; empty where it can."""
    if shutil.which("ros2") is None:
        return (
            "no ros2 command: run under .venv-ros/bin/python-ros after scripts/setup_ros.sh with ROS 2's launch "
            "wheels (FARL_ROS_WHEELS), or in a shell with ROS 2 Jazzy and ros2_ws/install/setup.bash sourced"
        )
    found = subprocess.run(["ros2", "pkg", "prefix", "farl_bringup"], capture_output=True, text=True, timeout=60)
    if found.returncode != 0:
        return "ros2 does not find farl_bringup: build ros2_ws with colcon and source its install/setup.bash"
    return ""


@pytest.fixture(scope="module")
def launchable():
    if why := _launch_ready():
        pytest.skip(why)


@pytest.fixture
def domain(monkeypatch, tmp_path):
    """A DDS domain of the test's own: nothing of an earlier test's graph reaches this one; and its own
    ROS log folder."""
    monkeypatch.setenv("ROS_LOG_DIR", str(tmp_path / "ros_log"))
    base = int(os.environ.get("ROS_DOMAIN_ID", "10"))
    monkeypatch.setenv("ROS_DOMAIN_ID", str((base + 1 + next(_domains)) % 100 + 1))
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    yield
    subprocess.run(["ros2", "daemon", "stop"], capture_output=True, timeout=30)


def task_config(tmp_path: Path, run: Path, horizon: int = 15, min_new_steps: int = 1, real: bool = False) -> Path:
    """config/<task>.yaml with short episodes, the run and the bag folder in `tmp_path`."""
    name = "franka_fragile_push_wall" if real else "fragile_push_wall"
    cfg = yaml.safe_load((REPO / "config" / f"{name}.yaml").read_text())
    cfg["robot"]["horizon_steps"] = horizon
    cfg["learner"]["run_dir"] = str(run)
    cfg["learner"]["min_new_steps"] = min_new_steps
    cfg["recorder"]["out_dir"] = str(tmp_path / "bags")
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture
def run(tiny_run, tmp_path) -> Path:
    """A copy of the tiny pre-training: the learner writes its online policy into the run."""
    return Path(shutil.copytree(tiny_run, tmp_path / "run"))


class Launch:
    """`ros2 launch farl_bringup <task>.launch.py ARGS` in its own process group (as a terminal runs it),
    from `cwd`, its output in a file."""

    def __init__(self, cwd: Path, *args: str, task: str = "fragile_push_wall") -> None:
        self.log = cwd / "launch.log"
        self._out = self.log.open("wb")
        self.proc = subprocess.Popen(
            ["ros2", "launch", "farl_bringup", f"{task}.launch.py", *args],
            cwd=cwd,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    @property
    def text(self) -> str:
        return ANSI.sub("", self.log.read_text(errors="replace"))

    def wait(self, timeout_s: float) -> int:
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"ros2 launch still running after {timeout_s:.0f} s:\n{self.text[-4000:]}")
        finally:
            self._out.close()

    def wait_for(self, pattern: str, timeout_s: float) -> None:
        end = time.monotonic() + timeout_s
        while not re.search(pattern, self.text):
            if self.proc.poll() is not None or time.monotonic() > end:
                self.kill()
                pytest.fail(f"no {pattern!r} in the launch's output:\n{self.text[-4000:]}")
            time.sleep(0.2)

    def interrupt(self) -> None:
        """Ctrl-C in the terminal: SIGINT to the launch and every node, the whole process group."""
        os.killpg(self.proc.pid, signal.SIGINT)

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)


def ros2(*args: str, timeout_s: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["ros2", *args], capture_output=True, text=True, timeout=timeout_s)


def discovered(args: list[str], name: str, timeout_s: float = 60) -> None:
    """Wait until `ros2 ARGS` lists `name`: a daemon that has just started takes a while to discover the
    graph on a loaded machine, and `ros2 topic echo` needs the type it discovers."""
    end = time.monotonic() + timeout_s
    while name not in ros2(*args).stdout.split():
        assert time.monotonic() < end, f"ros2 {' '.join(args)} never listed {name}"
        time.sleep(1)


def bags(folder: Path) -> list[Path]:
    return sorted(iter_bag_paths(folder)) if folder.exists() else []


def assert_clean(text: str) -> None:
    """No stalled step, no step or episode left out of the bags, no traceback, no shutdown noise."""
    for what in (*STALLED, *LOST, *NOISE):
        assert what not in text, f"{what!r} in the launch's output:\n{text[-4000:]}"


def test_the_learned_graph_runs_in_processes_with_every_episode_played_by_the_version_meant_for_it(
    launchable, domain, run, tmp_path
) -> None:
    """5 nodes, 5 processes, parameters from params files: two episodes at 5 Hz with no stalled step (the
    shield joins state and proposal in whatever order DDS delivers them), and the learner's update on
    episode 0 (min_new_steps 1) plays episode 1 (it reads the bag the recorder announces, not the folder
    in a race with the rename; the robot waits for its answer)."""
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    launch = Launch(cwd, f"config:={task_config(tmp_path, run)}", "episodes:=2")
    assert launch.wait(240) == 0, launch.text[-4000:]
    text = launch.text
    assert_clean(text)
    recorded = [read_episode(b) for b in bags(tmp_path / "bags")]
    assert [e.policy_version for e in recorded] == [0, 1]
    assert all(e.policy.startswith("learned:") and len(e) > 0 for e in recorded)
    assert "PPO update on" in text and "policy version 1 loaded" in text
    assert re.search(r"episode 2/2: \w+, return [-\d.]+ in \d+ steps, \d+ shield swaps, policy version 1", text)
    for node in ("robot", "policy", "learner", "safety_shield"):  # each logs under /farl
        assert f"[farl.{node}]:" in text, node


def test_the_scripted_graph_under_a_namespace_and_with_a_scripted_person(launchable, domain, run, tmp_path) -> None:
    """The teleop node starts from its params file (teleop.axis_map [x, y, z], whose `y` rcl's YAML reads
    as a bool when unquoted), and the graph's nodes and topics live under the namespace."""
    launch = Launch(
        tmp_path,
        f"config:={task_config(tmp_path, run)}",
        "policy:=scripted",
        "takeover:=true",
        "device:=scripted",
        "episodes:=2",
        "namespace:=arm1",
    )
    assert launch.wait(240) == 0, launch.text[-4000:]
    text = launch.text
    assert_clean(text)
    assert "[arm1.farl.robot]:" in text  # the node /arm1/farl/robot
    assert re.search(r"\[teleop_node-\d+\]: process has finished cleanly", text)
    assert len(bags(tmp_path / "bags")) == 2  # the recorder heard /arm1/farl/* from the robot


def test_a_live_graph_answers_ros2_cli_and_ends_cleanly_on_ctrl_c(launchable, domain, run, tmp_path) -> None:
    """`ros2 topic echo --once /farl/policy_version` is answered on a fresh graph (the learner publishes it
    at start, transient local); `ros2 param set` is refused (read-only); Ctrl-C mid-episode ends every
    process cleanly, keeps the finished bags and drops the partial one."""
    launch = Launch(tmp_path, f"config:={task_config(tmp_path, run, horizon=25, min_new_steps=10**6)}", "episodes:=50")
    launch.wait_for(r"episode 1/50:", 180)
    params = Path(re.search(r"params (\S+)", launch.text)[1])  # beside the launch's logs, not one more /tmp folder
    assert params.is_relative_to(tmp_path / "ros_log") and (params / "robot.yaml").is_file(), params
    discovered(["topic", "list"], "/farl/policy_version")
    for _ in range(5):  # on a loaded machine echo's own discovery can still miss the type: ask again
        echo = ros2("topic", "echo", "--once", "/farl/policy_version", timeout_s=60)
        if echo.returncode == 0:
            break
        time.sleep(2)
    assert echo.returncode == 0 and "data: 0" in echo.stdout, echo.stdout + echo.stderr
    for node in ("/farl/safety_shield", "/farl/robot", "/farl/policy", "/farl/learner", "/farl/episode_recorder"):
        discovered(["node", "list"], node)  # the daemon lists the graph's nodes as it discovers them
    refused = ros2("param", "set", "/farl/robot", "rate_hz", "10.0")
    assert "read-only" in (refused.stdout + refused.stderr).lower(), refused.stdout + refused.stderr
    got = ros2("param", "get", "/farl/robot", "rate_hz")
    assert "5.0" in got.stdout, got.stdout + got.stderr
    time.sleep(1.5)  # inside a later episode: 25 steps take 5 s, and its start came at once
    launch.interrupt()
    assert launch.wait(60) == 0, launch.text[-4000:]
    text = launch.text
    assert_clean(text)
    assert len(re.findall(r"process has finished cleanly", text)) == 5
    kept = bags(tmp_path / "bags")
    assert len(kept) >= 1 and all(len(read_episode(b)) > 0 for b in kept)
    assert not any(p.name.startswith(".") for p in (tmp_path / "bags").iterdir()), "a partial bag was left"


def test_a_real_launch_without_a_robot_ends_in_one_line_naming_it(launchable, domain, run, tmp_path) -> None:
    """mode:=real against an address where no robot answers: the launch's one line names the robot node's
    own reason; the nodes stopped while still importing torch exit quietly; rc 1, no traceback."""
    calibration = tmp_path / "camera_calibration.yaml"
    calibration.write_text(yaml.safe_dump({"T_base_camera": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 1], [0, 0, 0, 1]]}))
    cfg_path = task_config(tmp_path, run, real=True)
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["perception"]["calibration"] = str(calibration)
    cfg_path.write_text(yaml.safe_dump(cfg))
    launch = Launch(tmp_path, "mode:=real", f"config:={cfg_path}", "robot_ip:=127.0.0.9", "camera:=topics")
    assert launch.wait(120) == 1, launch.text[-4000:]
    text = launch.text
    for what in NOISE:
        assert what not in text, text[-4000:]
    causes = [line for line in text.splitlines() if "Caught exception in launch" in line]
    assert len(causes) == 1 and "robot exited with code 1" in causes[0] and "127.0.0.9" in causes[0], text[-4000:]


def test_a_launch_without_its_pre_training_ends_in_one_line_before_any_node_starts(
    launchable, domain, tmp_path
) -> None:
    """Started from a folder with no runs/: one line naming the missing file, rc 1, no node started."""
    launch = Launch(tmp_path)
    assert launch.wait(120) == 1, launch.text[-4000:]
    text = launch.text
    assert "Traceback" not in text and "process started" not in text
    assert f"{tmp_path}/runs/fragile_push_wall/run/task_policy.pt does not exist" in text


def test_robot_and_learner_roles_train_across_two_process_groups_with_no_shared_files(
    launchable, domain, tiny_run, tmp_path
) -> None:
    """Two machines on one: `role:=learner` (recorder, learner) and `role:=robot` (robot, policy, shield) as
    two launches, each its own process group started from its own folder, with its own copy of the
    pre-training and relative paths, so no file is shared. The learner side records its bags from the
    topics and trains on them; its policies reach the robot side as policy_weights messages."""
    sides = {name: tmp_path / name for name in ("robot_pc", "learner_pc")}
    for folder in sides.values():
        shutil.copytree(tiny_run, folder / "run")
        cfg = yaml.safe_load((REPO / "config" / "fragile_push_wall.yaml").read_text())
        cfg["robot"]["horizon_steps"] = 15
        cfg["learner"].update(run_dir="run", min_new_steps=1)
        cfg["recorder"]["out_dir"] = "bags"
        (folder / "task.yaml").write_text(yaml.safe_dump(cfg))
    learner = Launch(sides["learner_pc"], "config:=task.yaml", "role:=learner")
    learner.wait_for(r"\[farl\.learner\]: learning from the episodes", 120)  # up: version 0 and weights out
    robot = Launch(sides["robot_pc"], "config:=task.yaml", "role:=robot", "episodes:=3")
    assert robot.wait(240) == 0, robot.text[-4000:] + learner.text[-4000:]
    learner.wait_for(r"PPO update on \d+ steps -> policy version 3", 60)  # its answer to the last episode
    learner.interrupt()
    assert learner.wait(60) == 0, learner.text[-4000:]
    for launch in (robot, learner):
        assert_clean(launch.text)

    recorded = [read_episode(b) for b in bags(sides["learner_pc"] / "bags")]
    assert [e.policy_version for e in recorded] == [0, 1, 2]  # each played by the version trained for it
    assert all(e.policy.startswith("learned:") and len(e) > 0 for e in recorded)
    assert (sides["learner_pc"] / "run" / "online_policy.pt").is_file()
    text = robot.text
    assert "policy version 2 loaded" in text  # over DDS: the robot side has no file to load it from
    assert re.search(r"episode 3/3: \w+, return [-\d.]+ in \d+ steps, \d+ shield swaps, policy version 2", text)
    assert not (sides["robot_pc"] / "bags").exists() and not (sides["robot_pc"] / "run" / "online_policy.pt").exists()
    assert "episode_recorder_node" not in text and "learner_node" not in text
    assert "robot_node" not in learner.text and "policy_node" not in learner.text


def test_the_fosp_graph_runs_in_processes_and_learns_from_the_episodes_it_records(
    launchable, domain, tiny_fosp_run, tmp_path
) -> None:
    """policy:=fosp on SafeReach: the FOSP learner trains on episode 0's bag and publishes its agent, which
    the FOSP policy node loads and plays episode 1 with; the recorder writes both bags."""
    run = Path(shutil.copytree(tiny_fosp_run, tmp_path / "fosp_run"))
    cfg = yaml.safe_load((REPO / "config" / "safe_reach.yaml").read_text())
    cfg["robot"]["horizon_steps"] = 15
    cfg["learner"]["fosp_run_dir"] = str(run)
    cfg["recorder"]["out_dir"] = str(tmp_path / "bags")
    path = tmp_path / "safe_reach.yaml"
    path.write_text(yaml.safe_dump(cfg))
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    launch = Launch(cwd, f"config:={path}", "policy:=fosp", "episodes:=2", task="safe_reach")
    assert launch.wait(240) == 0, launch.text[-4000:]
    text = launch.text
    assert_clean(text)
    recorded = [read_episode(b) for b in bags(tmp_path / "bags")]
    assert [e.policy_version for e in recorded] == [0, 1]
    assert all(e.policy.startswith("fosp:") and len(e) > 0 for e in recorded)
    assert "FOSP trained on 1 new episode(s) -> version 1" in text and "policy version 1 loaded" in text
    assert (run / "online_fosp.pt").is_file()
