"""The campaign's criteria, judged on hand-made results: held, did not hold, and "so far" on a partial
campaign; the README's headline reads the campaign's folder alone."""

from __future__ import annotations

import json

from farl_bringup.campaign_criteria import criteria, criteria_section, missing_runs

SMALL = {"tasks": ["bounded_push", "bounded_soccer", "fragile_push_wall", "obstructed_push"], "methods": [
    "farl", "uni_o4", "farl_qrisk"], "seeds": 2}  # fmt: skip


def run(method: str, seed: int, failures: float, after: float = 1000.0, before: float = 1000.0) -> dict:
    return {
        "method": method,
        "seed": seed,
        "failure_episodes": failures,
        "before": {"return": before},
        "after": {"return": after, "failure_rate": 0.0},
    }


def calibration(wm_missed: float, qr_missed: float) -> dict:
    return {"calibration": {"world_model": {"missed": wm_missed}, "q_risk": {"missed": qr_missed}}}


def campaign(farl: float, base: float = 10.0, qrisk: float = 10.0, wm_missed: float = 0.1, **farl_run) -> dict:
    """Every task of SMALL with both seeds of every method."""
    return {
        t: {
            "methods": {
                f"{m}/{s}": run(m, s, f, **(farl_run if m == "farl" else {}))
                for s in range(2)
                for m, f in (("farl", farl), ("uni_o4", base), ("farl_qrisk", qrisk))
            },
            "pretrainings": {f"pretrain/seed{s}": calibration(wm_missed, 0.2) for s in range(2)},
        }
        for t in SMALL["tasks"]
    }


def test_a_complete_campaign_that_meets_the_bar_holds_every_criterion():
    v = {c.claim: c.verdict for c in criteria(campaign(farl=4.0), SMALL)}
    judged = {k: x for k, x in v.items() if x != "reported"}
    assert set(judged.values()) == {"held"}, v
    assert len(judged) == 6


def test_each_criterion_fails_on_its_own():
    def failed(results: dict) -> list[str]:
        return [c.claim for c in criteria(results, SMALL) if c.verdict == "did not hold"]

    # 40% fewer everywhere: each task's 35% holds, the 50% average does not
    assert failed(campaign(farl=6.0)) == [
        "at least 50% fewer failure episodes than Uni-O4, averaged over the paper's tasks"
    ]
    assert any("each paper task" in c for c in failed(campaign(farl=7.0)))
    collapsed = failed(campaign(farl=4.0, after=700.0, before=1000.0))
    assert any("evaluation return at least" in c for c in collapsed)
    assert any("below 80% of its own pre-trained" in c for c in collapsed)
    assert failed(campaign(farl=4.0, wm_missed=0.3)) == [
        "C_H misses no more held-out failures than Q_risk at the calibrated false-alarm rate, on each task"
    ]
    assert failed(campaign(farl=4.0, qrisk=3.0)) == ["FARL fails no more than farl_qrisk on average"]


def test_a_partial_campaign_says_so_far_and_names_what_is_missing():
    results = campaign(farl=4.0)
    for t in ("bounded_soccer", "obstructed_push"):
        del results[t]
    del results["bounded_push"]["methods"]["uni_o4/1"]
    v = {c.claim: c for c in criteria(results, SMALL)}
    assert v["at least 35% fewer failure episodes than Uni-O4 on each paper task"].verdict == "holds so far"
    assert (
        "bounded_soccer: not run yet" in v["at least 35% fewer failure episodes than Uni-O4 on each paper task"].detail
    )
    assert v["at least 50% fewer failure episodes than Uni-O4, averaged over the paper's tasks"].verdict == (
        "not judged yet"
    )
    assert missing_runs(results, SMALL)["bounded_push"] == ["uni_o4/1"]
    section = criteria_section(results, SMALL)
    assert "The campaign holds 11 of its 24 runs" in section
    assert "bounded_soccer 0" in section and "bounded_push 5" in section


def test_the_headline_reads_the_campaign_folder_alone(tmp_path):
    from farl_bringup.headline import headline_table

    path = tmp_path / "results.json"
    results = campaign(farl=4.0)
    del results["obstructed_push"]
    path.write_text(json.dumps(results))
    table = headline_table(path)
    assert "| fragile_push_wall | 4.0 ± 0.0 | 10.0 ± 0.0 | 0.40 (0.40-0.40) | 1000 ± 0 | 1000 ± 0 | 2, 2 |" in table
    assert "| obstructed_push | — | — | — | — | — | 0, 0 |" in table
    assert "| disturbed_push | — |" in table  # the campaign's fifth task, not run here
    assert "The campaign holds" in table


def test_runs_at_one_seed_from_two_pre_trainings_are_named():
    from farl_bringup.campaign_criteria import mixed_pretrainings, progress_line

    results = campaign(farl=4.0)
    for r in results["fragile_push_wall"]["methods"].values():
        r["pretraining"] = {"folder": f"pretrain/seed{r['seed']}", "id": "aaaa"}
    results["fragile_push_wall"]["pretrainings"]["pretrain/seed0"]["id"] = "aaaa"
    assert mixed_pretrainings(results) == []
    results["fragile_push_wall"]["methods"]["uni_o4/1"]["pretraining"]["id"] = "bbbb"
    results["fragile_push_wall"]["pretrainings"]["pretrain/seed0"]["id"] = "cccc"
    assert mixed_pretrainings(results) == ["fragile_push_wall seed 0", "fragile_push_wall seed 1"]
    assert "more than one pre-training at one seed" in progress_line(results, SMALL)
