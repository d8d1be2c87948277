"""Task configs: every shipped file loads; mistakes get readable errors naming the file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from farl_common.config import ConfigError, config_from_dict, load_config, task_config, unit_violations
from farl_sim import TASKS

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("task", sorted(TASKS))
def test_shipped_configs_load(task):
    cfg = task_config(task)
    assert cfg.task == task and cfg.rate_hz == 5.0 and cfg.robot.backend == "sim"
    assert cfg.topics["state"] == "/farl/state"


def test_numbers_carry_units_in_their_names():
    assert unit_violations() == []


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"robot": {"max_stp_m": 0.01}}, "robot.max_stp_m: unknown key (did you mean 'max_step_m'?)"),
        ({"rate": 5}, "rate: unknown key"),
        ({"rate_hz": "fast"}, "rate_hz: expected a number"),
        ({"rate_hz": 0}, "rate_hz: 0.0 is out of range"),
        ({"robot": {"horizon_steps": 2.5}}, "robot.horizon_steps: expected an integer"),
        ({"robot": {"backend": "ur5"}}, "robot.backend: must be one of 'sim' | 'franky'"),
        ({"robot": {"workspace_min_m": [0, 0]}}, "need three values"),
        ({"robot": {"workspace_min_m": [1, 1, 1]}}, "min < max"),
        ({"topics": {"states": "/x"}}, "unknown topic name"),
        ({"robot": 3}, "robot: expected a mapping"),
        ({"episodes": {"kind": "teleop"}}, "episodes.kind: must be one of"),
        ({"robot": {"stale_timeout_s": float("nan")}}, "NaN"),
    ],
)
def test_bad_values_are_explained(data, message):
    with pytest.raises(ConfigError) as err:
        config_from_dict(data, "my.yaml")
    assert str(err.value).startswith("my.yaml: ") and message in str(err.value)


def test_int_accepted_where_float_expected_and_defaults_fill_in():
    cfg = config_from_dict({"rate_hz": 10, "robot": {"horizon_steps": 50}})
    assert cfg.rate_hz == 10.0 and isinstance(cfg.rate_hz, float)
    assert cfg.robot.max_step_m == 0.01 and cfg.topics["episode_event"] == "/farl/episode_event"


def test_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("rate_hz: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(lst)
