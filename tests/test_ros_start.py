"""How farl's ROS 2 side starts: the params files it writes for ros2 launch, the executables' start,
the launch's checks before any node starts, and pytest in a shell with ROS 2 Jazzy sourced."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from farl_bringup.launch_graph import last_line, preflight
from farl_bringup.params_file import params_yaml
from farl_common.config import ConfigError, task_config
from farl_common.executable import node_main

REPO = Path(__file__).resolve().parents[1]


@dataclass
class _Params:
    axis_map: list[str] = field(default_factory=lambda: ["x", "y", "z"])
    mode: str = "on"
    rate_hz: float = 5.0
    count: int = 3
    flag: bool = True
    unused: list[float] = field(default_factory=list)


def test_a_params_file_quotes_every_string_and_leaves_out_empty_lists() -> None:
    """rcl's YAML 1.1 reads an unquoted y or on as a bool; and it cannot type an empty list."""
    text = params_yaml("teleop", _Params())
    assert 'axis_map: ["x", "y", "z"]' in text and 'mode: "on"' in text
    assert "rate_hz: 5.0" in text and "count: 3" in text and "flag: true" in text and "unused" not in text
    assert yaml.safe_load(text) == {
        "/**": {
            "ros__parameters": {"axis_map": ["x", "y", "z"], "mode": "on", "rate_hz": 5.0, "count": 3, "flag": True}
        }
    }
    with pytest.raises(ConfigError, match="axis_map is an empty list"):
        params_yaml("teleop", _Params(axis_map=[]))


def test_an_executable_stopped_while_it_imports_its_node_exits_quietly(tmp_path, monkeypatch, capfd) -> None:
    """ros2 launch sends SIGINT to every node when one fails at start, often while the others are still
    importing torch: they exit 0 without a traceback, leaving the failing node's line as the only one."""
    (tmp_path / "slow_node_module.py").write_text("raise KeyboardInterrupt\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    pytests_handler = signal.getsignal(signal.SIGINT)
    try:
        assert node_main("slow_node_module", "SlowNode")([]) == 0
    finally:
        signal.signal(signal.SIGINT, pytests_handler)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_sigint_while_a_node_imports_ends_the_process_at_once_with_exit_0(tmp_path) -> None:
    """Raised from the handler, the KeyboardInterrupt could land inside torch's C++ import and abort the
    process (`terminate called after throwing pybind11::error_already_set`), or come out of a binding as
    another error. Stand-in: an import that does not let it through."""
    (tmp_path / "importing_node.py").write_text(
        "import os, signal, time\n"
        "try:\n    os.kill(os.getpid(), signal.SIGINT)\n    time.sleep(5)\n"
        "except BaseException:\n    pass\n"
        "raise SystemExit(3)\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    code = "import sys; from farl_common.executable import node_main; sys.exit(node_main('importing_node', 'N')())"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=20)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


_SELF_STOPPER = """
import os, signal, time
from dataclasses import dataclass
from farl_common.runtime.node import Node, Timer

@dataclass
class StopperParams:
    rate_hz: float = 20.0

class SelfStopper(Node):
    name = "self_stopper"
    Params = StopperParams
    timers = (Timer("tick", "rate_hz"),)

    def _mark(self, what):
        with open(os.environ["MARKS"], "a") as f:
            f.write(what + "\\n")

    def tick(self):
        os.kill(os.getpid(), signal.SIGINT)
        end, n = time.monotonic() + 0.3, 0
        while time.monotonic() < end:  # plain bytecode, where a raising handler's exception would land
            n += 1
        self._mark("callback ended")

    def on_shutdown(self):
        self._mark("shut down")
"""


@pytest.mark.ros
def test_sigint_to_a_running_node_lets_the_callback_end_then_shuts_down_cleanly(tmp_path) -> None:
    """A signal handler that raises lands wherever the interpreter is: inside rclpy's C++ message
    conversion it surfaced as `RuntimeError: Unable to convert call argument` with a traceback, or
    aborted the process. Once the node runs, SIGINT ends it between callbacks instead."""
    pytest.importorskip("rclpy")
    (tmp_path / "self_stopper.py").write_text(_SELF_STOPPER)
    marks = tmp_path / "marks"
    env = {**os.environ, "MARKS": str(marks), "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    code = (
        "import sys; from farl_common.executable import node_main; sys.exit(node_main('self_stopper', 'SelfStopper')())"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "KeyboardInterrupt" not in done.stderr, done.stderr
    assert marks.read_text().splitlines() == ["callback ended", "shut down"]


def test_the_launch_refuses_a_learned_graph_without_its_pre_training_in_one_line(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = task_config("fragile_push_wall")
    cfg.learner.run_dir = str(tmp_path / "runs/fragile_push_wall/run")
    with pytest.raises(ConfigError, match=r"pre-trained task policy .*/task_policy.pt does not exist \(farl pretrain"):
        preflight(cfg)
    cfg.policy.kind = "scripted"
    preflight(cfg)  # the scripted graph needs no run


def test_the_launch_repeats_a_failed_nodes_own_last_line() -> None:
    assert (
        last_line("\x1b[31m[robot] no robot at 127.0.0.9: refused\x1b[0m\n\n")
        == "[robot] no robot at 127.0.0.9: refused"
    )
    assert last_line("\n  \n") == ""


def test_pytest_starts_in_a_shell_with_ros2_jazzy_sourced(tmp_path) -> None:
    """A sourced Jazzy puts launch_testing_ros on the path, whose pytest plugin (registered as `launch_ros`)
    declares a hook pytest 9 does not know: every run failed to start (exit 3). Stand-in: a plugin of the
    same entry-point name with that hook. pyproject.toml's `-p no:launch_ros` keeps it out."""
    dist = tmp_path / "launch_testing_ros-0.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: launch-testing-ros\nVersion: 0.0\n")
    (dist / "entry_points.txt").write_text("[pytest11]\nlaunch_ros = launch_testing_ros_plugin\n")
    (tmp_path / "launch_testing_ros_plugin.py").write_text(
        textwrap.dedent(
            """
            def pytest_launch_collect_makemodule(path, parent, entrypoint):
                return None
            """
        )
    )
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}

    def collect(*extra: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *extra]
        return subprocess.run([*cmd, "tests/test_envelope.py"], cwd=REPO, env=env, capture_output=True, text=True)

    assert collect().returncode == 0, collect().stdout[-2000:]
    plugin_loaded = collect("-o", "addopts=")  # the stand-in does break pytest when it is let in
    assert plugin_loaded.returncode != 0 and "pytest_launch_collect_makemodule" in plugin_loaded.stdout
