"""`farl replay`: run a shield again over recorded episodes and compare with what happened.

For every step of every episode bag the critic's risk C_H of the action the policy proposed is
computed afresh (paper eq. 10) and set against eps_safe (eq. 11). Where the bag holds the shield's
own decisions (the learned graph's bags) the two are compared: swap agreement, risk differences, and
whether the new shield would have swapped earlier or later in each episode. A plot per episode shows
both risks along the episode against eps_safe, with the failure and the stored swaps marked.
Demo and scripted bags have no stored decisions: only the new risks are reported.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from farl_common.bags import Episode, read_episodes
from farl_common.config import ConfigError
from farl_common.shield_settings import ShieldSettings


@dataclass
class EpisodeReplay:
    bag: str
    kind: str
    outcome: str
    steps: int
    failure_step: int | None
    stored_swaps: int | None
    """None where the bag holds no shield decisions."""
    new_swaps: int
    agreement: float | None
    """Fraction of steps where the stored and the new shield decide alike."""
    mean_abs_risk_diff: float | None
    first_stored_swap: int | None
    first_new_swap: int | None
    new_risk: list[float] = field(repr=False, default_factory=list)
    stored_risk: list[float] = field(repr=False, default_factory=list)


@dataclass
class ReplayReport:
    critic: str
    eps_safe: float
    eps_source: str
    episodes: list[EpisodeReplay]
    errors: list[str]

    def summary(self) -> dict:
        with_stored = [e for e in self.episodes if e.agreement is not None]
        steps = sum(e.steps for e in with_stored)
        return {
            "episodes": len(self.episodes),
            "with_stored_decisions": len(with_stored),
            "agreement": (sum(e.agreement * e.steps for e in with_stored) / steps) if steps else None,
            "new_swaps": sum(e.new_swaps for e in self.episodes),
            "stored_swaps": sum(e.stored_swaps or 0 for e in with_stored),
            "earlier": sum(_first(e.first_new_swap) < _first(e.first_stored_swap) for e in with_stored),
            "later": sum(_first(e.first_new_swap) > _first(e.first_stored_swap) for e in with_stored),
            "unreadable": len(self.errors),
        }


def _first(k: int | None) -> float:
    return float("inf") if k is None else float(k)


def _first_true(flags: np.ndarray) -> int | None:
    idx = np.flatnonzero(flags)
    return int(idx[0]) if len(idx) else None


def replay_episode(ep: Episode, critic, eps_safe: float) -> EpisodeReplay:
    from farl_safety_shield.calibrate import risks

    new = risks(critic, ep.obs.astype(np.float32), ep.proposed_action.astype(np.float32))
    new_swap = new > eps_safe
    stored = ep.risk.astype(np.float64)
    has_stored = bool(np.isfinite(stored).any())
    fail = np.flatnonzero(ep.cost > 0)
    return EpisodeReplay(
        bag=ep.path.name,
        kind=ep.kind,
        outcome=ep.outcome,
        steps=len(ep),
        failure_step=int(fail[0]) if len(fail) else None,
        stored_swaps=int(ep.swapped.sum()) if has_stored else None,
        new_swaps=int(new_swap.sum()),
        agreement=float(np.mean(new_swap == ep.swapped)) if has_stored else None,
        mean_abs_risk_diff=float(np.nanmean(np.abs(new - stored))) if has_stored else None,
        first_stored_swap=_first_true(ep.swapped) if has_stored else None,
        first_new_swap=_first_true(new_swap),
        new_risk=[float(x) for x in new],
        stored_risk=[float(x) for x in stored],
    )


def bags_task(bags: list[tuple[Path, Episode | None, str]], root: str | Path) -> str:
    """The one task the readable bags under `root` are episodes of; ConfigError for none or several."""
    tasks = sorted({ep.task for _, ep, _ in bags if ep is not None and ep.task})
    if len(tasks) != 1:
        found = ", ".join(tasks) if tasks else "no task in their episode events"
        raise ConfigError(f"{root}: the bags hold {found}: replay the bags of one task at a time")
    return tasks[0]


def check_run_task(run: str | Path, task: str, root: str | Path) -> None:
    """Refuse to score `task`'s bags with a run pre-trained on another task (its critic knows another scene)."""
    from farl_learning.run_manifest import check_run

    run_task = check_run(Path(run))["task"]
    if run_task != task:
        raise ConfigError(
            f"{root} holds {task} episodes, but {run} was pre-trained on {run_task}: give --run a {task} run"
        )


def replay(
    root: str | Path,
    run: str | Path,
    settings: ShieldSettings,
    out: str | Path | None = None,
    bags: list[tuple[Path, Episode | None, str]] | None = None,
    view: str | None = None,
) -> ReplayReport:
    """Re-run the settings' critic of `run` over every episode bag under `root` (or the already read
    `bags`); write report and plots to `out`. The bags must be of the task `run` was pre-trained on.
    `view` (desktop | web | none) also writes each episode's live-view recording beside its bag
    (`farl_bringup.live_view.view_episode`), and shows it in the viewer it names."""
    from farl_safety_shield.loader import load_critic

    if bags is None:
        bags = list(read_episodes(root))  # a folder without bags fails before the critic is loaded
    task = bags_task(bags, root)
    check_run_task(run, task, root)
    critic = load_critic(run, settings)
    critic_name, eps_safe = settings.critic, settings.eps_safe
    episodes, errors = [], []
    viewer = None
    if view is not None:
        from farl_bringup.live_view import Viewer, envelope, view_episode
        from farl_common.config import task_config

        viewer = Viewer(view)  # type: ignore[arg-type]
        box = envelope(task_config(task).robot)  # the bag does not hold the envelope: the task config's
    for _, ep, err in bags:
        if ep is None:
            errors.append(err)
        elif len(ep):
            episodes.append(replay_episode(ep, critic, eps_safe))
            if view is not None:
                view_episode(ep, ep.path.with_name(f"{ep.path.name}.rrd"), critic, eps_safe, viewer, box)
    report = ReplayReport(critic_name, eps_safe, settings.eps_source, episodes, errors)
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        data = {**asdict(report), "summary": report.summary()}
        (out / "replay.json").write_text(json.dumps(data, indent=1))
        for e in episodes:
            _plot(e, eps_safe, critic_name, out / f"{e.bag}.png", task)
    return report


def _plot(e: EpisodeReplay, eps_safe: float, critic: str, path: Path, task: str = "") -> None:
    """C_H per step on a log axis (eps_safe sits far below the risk a failure reaches), eps_safe drawn,
    the steps the shield swapped marked; legend entries only for what the episode has."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(8, 3.4))
    steps = np.arange(e.steps)
    floor = max(eps_safe, 1e-6) / 100  # log axis: a risk of 0 is drawn at the floor, not dropped
    ax.plot(steps, np.maximum(e.new_risk, floor), color="tab:blue", label=f"C_H ({critic}, replayed)")
    stored = np.asarray(e.stored_risk)
    if np.isfinite(stored).any():
        ax.plot(steps, np.maximum(stored, floor), color="tab:gray", ls="--", label="C_H in the bag")
        swaps = np.flatnonzero(np.isfinite(stored) & (stored > eps_safe))
        if len(swaps):
            ax.scatter(swaps, stored[swaps], s=12, color="tab:purple", zorder=3, label=f"shield swaps ({len(swaps)})")
    ax.axhline(eps_safe, color="tab:orange", lw=1.2, label=f"eps_safe {eps_safe:.3g}")
    if e.failure_step is not None:
        ax.axvline(e.failure_step, color="tab:red", lw=1.5, label=f"failure (step {e.failure_step})")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("failure risk C_H (log)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(f"{task or e.kind}: {e.bag} ({e.kind}, {e.outcome})", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", framealpha=0.8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def print_report(report: ReplayReport, out: Path | None) -> None:
    print(f"shield {report.critic}, eps_safe {report.eps_safe:.3f} ({report.eps_source})")
    print(
        f"{'episode bag':48s} {'kind':9s} {'steps':>5s} {'outcome':8s} {'swaps then':>10s} {'swaps now':>9s} "
        f"{'agree':>6s} {'|dC_H|':>7s} first swap then/now"
    )
    for e in report.episodes:
        then = "-" if e.stored_swaps is None else str(e.stored_swaps)
        agree = "-" if e.agreement is None else f"{e.agreement:.0%}"
        diff = "-" if e.mean_abs_risk_diff is None else f"{e.mean_abs_risk_diff:.3f}"
        first = f"{_show(e.first_stored_swap) if e.stored_swaps is not None else '-'}/{_show(e.first_new_swap)}"
        print(
            f"{e.bag[:48]:48s} {e.kind:9s} {e.steps:5d} {e.outcome:8s} {then:>10s} {e.new_swaps:9d} "
            f"{agree:>6s} {diff:>7s} {first}"
        )
    s = report.summary()
    if s["with_stored_decisions"]:
        print(
            f"agreement {s['agreement']:.1%} over {s['with_stored_decisions']} episodes with stored decisions; "
            f"swaps then {s['stored_swaps']}, now {s['new_swaps']}; the new shield swaps first earlier in "
            f"{s['earlier']}, later in {s['later']}"
        )
    else:
        print(f"no stored shield decisions in these bags; the shield would swap on {s['new_swaps']} steps")
    for err in report.errors:
        print(f"unreadable: {err}")
    if out is not None:
        print(f"report: {out / 'replay.json'}; plots: {out}/<bag>.png")


def _show(k: int | None) -> str:
    return "never" if k is None else str(k)
