"""`farl bench` end to end at a small budget: demos, pre-training, calibration, fine-tuning, JSON, plots."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from conftest import SMALL

from farl_bringup.bench import BenchConfig, failure_ratio_interval, report, run_bench, summary_table
from farl_bringup.campaign_criteria import mixed_pretrainings
from farl_common.shield_settings import CalibrationSettings


def small_bench(steps: int, **kw) -> BenchConfig:
    small = {
        "seeds": 1,
        "demo_episodes": (3, 4, 3),
        "calibration": CalibrationSettings(heldout_task_episodes=2, heldout_failure_episodes=3),
        "pretrain_scale": 0.02,
        "eval_episodes": 1,
    }
    return BenchConfig(steps=steps, **{**small, **kw})


@pytest.mark.slow
def test_small_bench_writes_results(tmp_path):
    """The layout where every seed shares one pre-training (`--shared-pretraining`)."""
    steps = 240 if SMALL else 4000
    cfg = small_bench(steps, pretrain_per_seed=False)
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(3)  # as `farl --threads 3` would: the sequential bench keeps it
    try:
        run_bench(["fragile_push_wall"], ["farl", "uni_o4", "ppo_lag"], tmp_path, cfg, progress=False)
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(threads)
    res = json.loads((tmp_path / "results.json").read_text())
    entry = res["fragile_push_wall"]
    assert set(entry["calibration"]) == {"world_model", "q_risk", "reachability"}
    assert {"return", "failure_rate", "success_rate"} <= set(entry["before"])
    assert sorted(entry["methods"]) == ["farl/0", "ppo_lag/0", "uni_o4/0"]
    for r in entry["methods"].values():
        assert r["steps"] >= steps and r["episodes"] == len(r["curve"]) > 0
        assert 0 <= r["failure_episodes"] <= r["episodes"]
        assert {"return", "failure_rate"} <= set(r["after"])
        # each episode's cost is in its curve row, and rho_c is their sum over the steps
        assert r["cost_regret"] == pytest.approx(sum(row[3] for row in r["curve"]) / r["steps"])
    assert entry["methods"]["uni_o4/0"]["swaps_per_episode"] == 0
    # each result says what produced it: budgets, and the shield exactly as it ran
    farl_cfg = entry["methods"]["farl/0"]["config"]
    assert farl_cfg["steps"] == steps and farl_cfg["pretrain_scale"] == 0.02
    assert farl_cfg["shield"]["critic"] == "world_model"
    assert farl_cfg["shield"]["eps_safe"] == entry["calibration"]["world_model"]["eps_safe"]
    assert entry["methods"]["uni_o4/0"]["config"]["shield"] is None and "config" not in res
    assert (tmp_path / "failure_episodes.png").stat().st_size > 5000 and (tmp_path / "curves.png").is_file()
    table = (tmp_path / "table.md").read_text()
    assert "| fragile_push_wall | farl |" in table and table == summary_table(res, ["farl", "uni_o4", "ppo_lag"])
    # A second call finds the work done and does not redo it.
    before = (tmp_path / "results.json").stat().st_mtime_ns
    run_bench(["fragile_push_wall"], ["farl"], tmp_path, cfg, progress=False)
    assert (
        json.loads((tmp_path / "results.json").read_text())["fragile_push_wall"]["methods"]["farl/0"]
        == entry["methods"]["farl/0"]
    )
    assert (tmp_path / "results.json").stat().st_mtime_ns >= before
    table = (tmp_path / "table.md").read_text()  # rebuilt from everything in the folder, not just farl
    assert "| fragile_push_wall | uni_o4 |" in table and "| fragile_push_wall | ppo_lag |" in table
    assert report(tmp_path) == table
    # Parallel runs, on a folder copied without its demos and held-out set (a complete, calibrated run
    # needs neither): each run in its own process, each result in its own file, all folded into results.json.
    import shutil

    for name in ("demos", "heldout"):
        shutil.rmtree(tmp_path / "fragile_push_wall" / name)
    run_bench(["fragile_push_wall"], ["farl", "uni_o4"], tmp_path, replace(cfg, seeds=2), progress=False, jobs=2)
    assert not (tmp_path / "fragile_push_wall" / "demos").exists()
    files = sorted(p.name for p in (tmp_path / "fragile_push_wall" / "results").iterdir())
    assert files == [
        f"{m}.seed{s}.json" for m, s in (("farl", 0), ("farl", 1), ("ppo_lag", 0), ("uni_o4", 0), ("uni_o4", 1))
    ]
    res2 = json.loads((tmp_path / "results.json").read_text())["fragile_push_wall"]
    assert sorted(res2["methods"]) == ["farl/0", "farl/1", "ppo_lag/0", "uni_o4/0", "uni_o4/1"]
    assert res2["methods"]["farl/0"] == entry["methods"]["farl/0"]  # done before: not run again
    assert res2["methods"]["farl/1"]["seed"] == 1 and res2["methods"]["farl/1"]["steps"] >= steps
    assert {"python", "torch", "cpus"} <= set(res2["methods"]["farl/1"]["machine"])
    # results.json rebuilt from the per-run files alone (a parent killed mid-campaign loses nothing)
    (tmp_path / "results.json").unlink()
    run_bench(["fragile_push_wall"], ["farl"], tmp_path, cfg, progress=False)
    assert sorted(json.loads((tmp_path / "results.json").read_text())["fragile_push_wall"]["methods"]) == sorted(
        res2["methods"]
    )
    # The task's pre-training is reused only under the settings it was made with: results would say otherwise.
    results_before = (tmp_path / "results.json").read_text()
    for other in (replace(cfg, policy_failures=5), replace(cfg, pretrain_scale=0.03), replace(cfg, constraint_reach=2)):
        with pytest.raises(ValueError, match="pre-trained with other settings"):
            run_bench(["fragile_push_wall"], ["farl"], tmp_path, other, progress=False)
    assert (tmp_path / "results.json").read_text() == results_before
    # the same count given explicitly (40 x 0.02 = 0.8, at least 1) is the same pre-training
    run_bench(["fragile_push_wall"], ["farl"], tmp_path, replace(cfg, policy_failures=1), progress=False)


@pytest.mark.slow
def test_each_seed_fine_tunes_from_a_pre_training_of_its_own(tmp_path):
    """The default protocol: per task and seed, demonstrations seeded by the seed, a pre-training and a
    calibration, shared by that seed's methods and by no other seed; each result names its pre-training
    and is judged against it."""
    steps = 240 if SMALL else 2000
    cfg = small_bench(steps, seeds=2)
    run_bench(["fragile_push_wall"], ["farl", "uni_o4"], tmp_path, cfg, progress=False)
    tdir = tmp_path / "fragile_push_wall"
    assert sorted(p.name for p in (tdir / "pretrain").iterdir()) == ["seed0", "seed1"]
    assert not (tdir / "run").exists()
    entry = json.loads((tmp_path / "results.json").read_text())["fragile_push_wall"]
    assert sorted(entry["pretrainings"]) == ["pretrain/seed0", "pretrain/seed1"] and "before" not in entry
    for key, r in entry["methods"].items():
        seed = int(key.split("/")[1])
        pre = entry["pretrainings"][f"pretrain/seed{seed}"]
        assert r["pretraining"] == {"folder": f"pretrain/seed{seed}", "demo_seed": seed, "id": pre["id"]}
        assert r["before"] == entry["pretrainings"][f"pretrain/seed{seed}"]["before"]
        if r["method"] == "farl":  # the shield it ran is its own seed's calibration
            want = entry["pretrainings"][f"pretrain/seed{seed}"]["calibration"]["world_model"]["eps_safe"]
            assert r["config"]["shield"]["eps_safe"] == want
    # different demonstrations: the two seeds' task demos start from different scenes
    from farl_common.bags import load_dataset

    first = [load_dataset(tdir / "pretrain" / f"seed{s}" / "demos").obs[0] for s in (0, 1)]
    assert not np.array_equal(*first)
    ids = [entry["pretrainings"][f"pretrain/seed{s}"]["id"] for s in (0, 1)]
    assert ids[0] != ids[1] and mixed_pretrainings({"fragile_push_wall": entry}) == []
    page = (tmp_path / "report.md").read_text()
    assert "a pre-training of its own" in page and "--shared-pretraining" not in page
    assert "Collapsed (evaluation return below 80% of its own pre-trained policy's):" in page


def test_a_run_that_falls_below_its_own_pre_training_is_counted_as_collapsed():
    def run(seed: int, before: float, after: float) -> dict:
        return {
            "method": "farl",
            "seed": seed,
            "before": {"return": before},
            "after": {"return": after, "failure_rate": 0.0},
            "failure_episodes": 1,
            "train_return_last20pct": after,
            "swaps_per_episode": 0.0,
        }

    results = {"bounded_push": {"methods": {"farl/0": run(0, 1000, 790), "farl/1": run(1, 500, 450)}}}
    table = summary_table(results, ["farl"])
    assert "| bounded_push | farl | 2 | 1.0 ± 0.0 | 620 ± 170 | 750 -> 620 ± 170 |" in table
    assert "1 of 2 runs: bounded_push farl seed 0 (1000 -> 790)." in table


def test_failure_ratio_has_a_bootstrap_interval():
    ratio, lo, hi = failure_ratio_interval([4, 6, 5, 5, 5], [10, 10, 10, 10, 10])
    assert ratio == 0.5 and 0.4 <= lo < 0.5 < hi <= 0.6
    ratio, lo, hi = failure_ratio_interval([5, 5, 5], [10, 10, 10])
    assert ratio == lo == hi == 0.5  # no spread, no interval


def test_the_summary_says_fewer_or_more_as_the_counts_are():
    """A task where FARL fails more reads "more" (not "-30.3% fewer"), and so does a negative average."""
    from farl_bringup.bench import summary_table

    def run(method: str, seed: int, failures: int) -> dict:
        after = {"return": 100.0, "failure_rate": 0.1, "success_rate": 0.5}
        return {"method": method, "seed": seed, "failure_episodes": failures, "train_return_last20pct": 1.0,
                "after": after, "swaps_per_episode": 0.0}  # fmt: skip

    def task(farl: int, uni: int) -> dict:
        return {"methods": {"farl/0": run("farl", 0, farl), "uni_o4/0": run("uni_o4", 0, uni)}}

    text = summary_table({"a": task(7, 10), "b": task(13, 10)}, ["farl", "uni_o4"])
    assert "a: FARL has 30.0% fewer failure episodes" in text
    assert "b: FARL has 30.0% more failure episodes" in text
    assert "Average over 2 task(s): 0.0% fewer failure episodes." in text
    text = summary_table({"b": task(13, 10)}, ["farl", "uni_o4"])
    assert "Average over 1 task(s): 30.0% more failure episodes." in text and "-30" not in text


def test_the_risk_diagnostic_scores_c_h_as_calibration_does(tiny_run, demo_dir, capsys):
    """bench/diagnose_risk.py splits C_H into its parts; its C_H row must be the calibration's own
    figure, or the parts are compared against something the shield does not use."""
    import importlib.util
    from pathlib import Path

    from farl_common.bags import load_dataset
    from farl_common.shield_settings import ShieldSettings
    from farl_safety_shield.calibrate import calibrate
    from farl_safety_shield.loader import load_critic

    path = Path(__file__).parent.parent / "bench" / "diagnose_risk.py"
    spec = importlib.util.spec_from_file_location("diagnose_risk", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    missed = module.main(["--run", str(tiny_run), "--held", str(demo_dir), "--horizon", "3"])
    expected = calibrate(
        load_critic(tiny_run, ShieldSettings(critic="world_model", horizon_steps=3)), load_dataset(demo_dir), 5, 0.05
    )
    assert missed["C_H"] == pytest.approx(expected.missed)
    assert set(missed) == {
        "C_H",
        "C_H, demo actions",
        "constraint head, true states",
        "constraint head, now",
        "Q_risk",
        "C_H + Q_risk at step H + 1",
    }
    assert all(0.0 <= m <= 1.0 for m in missed.values())
    assert capsys.readouterr().out.count("\n| ") == 7  # header and six rows


def test_the_detector_variants_calibrate_as_the_shield_and_sample_eq_10s_expectation(
    tiny_run, demo_dir, capsys, monkeypatch
):
    """bench/detector_variants.py: its `c_h` is the shield's critic at calibration's own eps_safe, and
    its sampled C_H is eq. 10 with drawn actions: equal to the mean-action C_H where the policy hardly
    varies, different where it does (or the draws never reached the rollout)."""
    import importlib.util
    from pathlib import Path

    import torch

    from farl_common.bags import load_dataset
    from farl_common.shield_settings import ShieldSettings
    from farl_learning.checkpoint import load
    from farl_learning.uni_o4 import policy_from_checkpoint
    from farl_safety_shield.calibrate import calibrate
    from farl_safety_shield.loader import load_critic

    path = Path(__file__).parent.parent / "bench" / "detector_variants.py"
    spec = importlib.util.spec_from_file_location("detector_variants", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    paths = ["--run", str(tiny_run), "--held", str(demo_dir), "--demos", str(demo_dir)]
    out = module.main([*paths, "--episodes", "1", "--variants", "none,c_h,q_risk_wm_data", "--samples", "2"])
    expected = calibrate(load_critic(tiny_run, ShieldSettings(critic="world_model")), load_dataset(demo_dir), 5, 0.05)
    assert out["c_h"]["calibration"]["eps_safe"] == pytest.approx(expected.eps_safe)
    assert set(out) == {"none", "c_h", "q_risk_wm_data"} and len(out["q_risk_wm_data"]["episodes"]) == 1
    assert capsys.readouterr().out.count("eps_safe") == 2

    policy = policy_from_checkpoint(load(tiny_run / "task_policy.pt"))
    critic = load_critic(tiny_run, ShieldSettings(critic="world_model"), policy)
    held = load_dataset(demo_dir)
    obs, act = torch.as_tensor(held.obs[:64]), torch.as_tensor(held.action[:64])
    reference = critic.risk(obs, act)
    gaps = {}
    for log_std in (-5.0, 1.0):
        with torch.no_grad():
            policy.log_std.fill_(log_std)
        sampled = module.SampledRisk(critic, samples=4, reduce="mean").risk(obs, act)
        gaps[log_std] = float((sampled - reference).abs().max())
    assert gaps[1.0] > 10 * gaps[-5.0]
    # Draws that are the mean: the rollout is eq. 10's own, term for term.
    monkeypatch.setattr(policy, "act", lambda obs, generator=None: policy(obs)[0])
    for reduce in ("mean", "max"):
        sampled = module.SampledRisk(critic, samples=3, reduce=reduce).risk(obs, act)
        assert torch.allclose(sampled, reference, atol=1e-5)


@pytest.mark.slow
def test_fosp_runs_beside_farl_on_safe_reach_with_its_cost_figures(tmp_path):
    """`farl bench --tasks safe_reach --methods fosp,farl`: FOSP pre-trains on the seed's own demos (the
    same bags as FARL's pre-training) and its result has FARL's figures plus J_c and rho_c; the report
    has both rows and FOSP's protocol."""
    cfg = small_bench(160, demo_episodes=(3, 2, 2), pretrain_scale=0.01)
    run_bench(["safe_reach"], ["fosp", "farl"], tmp_path, cfg, progress=False)
    entry = json.loads((tmp_path / "results.json").read_text())["safe_reach"]
    by_method = {r["method"]: r for r in entry["methods"].values()}
    fosp, farl = by_method["fosp"], by_method["farl"]
    assert fosp["steps"] >= 160 and fosp["episodes"] == len(fosp["curve"]) == len(fosp["online_cost_per_episode"])
    assert fosp["cost_regret"] == pytest.approx(sum(fosp["online_cost_per_episode"]) / fosp["steps"])
    assert fosp["failure_episodes"] == sum(row[2] for row in fosp["curve"])
    assert [row[3] for row in fosp["curve"]] == fosp["online_cost_per_episode"]
    assert {"return", "cost", "failure_rate", "success_rate"} <= set(fosp["after"]) | set(farl["after"])
    assert (tmp_path / "safe_reach" / "pretrain" / "seed0" / "fosp_run" / "fosp_run.json").is_file()
    assert fosp["config"]["pretrain_scale"] == 0.01 and fosp["config"]["demo_episodes"] == [3, 2, 2]
    page = (tmp_path / "report.md").read_text()
    assert "| safe_reach | fosp |" in page and "| safe_reach | farl |" in page
    assert "FOSP pre-trains on the same demonstrations for 30 gradient steps" in page


def test_the_results_page_counts_seeds_per_task_in_its_protocol_and_command(tmp_path):
    """Two tasks with one seed each are one seed per method (`farl:1`), not two."""
    from farl_bringup.bench import results_page

    def run(method: str) -> dict:
        return {
            "method": method,
            "seed": 0,
            "config": {"pretrain_scale": 0.5, "steps": 5000, "pretrain_per_seed": True},
        }

    results = {t: {"methods": {"farl/0": run("farl"), "uni_o4/0": run("uni_o4")}} for t in ("a", "b")}
    page = results_page(results, ["farl", "uni_o4"], tmp_path, "")
    assert "Seeds: farl 1, uni_o4 1." in page and "--methods farl:1,uni_o4:1 " in page
