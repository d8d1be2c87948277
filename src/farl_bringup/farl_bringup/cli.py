"""The `farl` command: one entry point for demos, the mocked sim graph and bag inspection."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

from farl_common.shield_settings import CRITICS, RECOVERIES, CalibrationSettings, ShieldSettings

_SHIELD, _CALIB = ShieldSettings(), CalibrationSettings()


def _cmd_demos(args: argparse.Namespace) -> int:
    from farl_sim.demos import DEFAULT_EPISODES, generate_demos
    from farl_sim.safe_reach_tasks import SAFE_REACH

    if args.task in SAFE_REACH and args.kind == "all":
        return _safe_reach_demos(args)
    kinds = ["task", "recovery", "failure"] if args.kind == "all" else [args.kind]
    for kind in kinds:
        n = args.episodes or DEFAULT_EPISODES[kind]
        t0 = time.perf_counter()
        summary = generate_demos(
            args.task, kind, n, args.out, seed=args.seed, storage=args.storage, resume=True, image_size=args.images
        )
        dt = time.perf_counter() - t0
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(summary.outcomes.items()))
        print(
            f"{kind}: {len(summary.written)} episode bags in {args.out} ({outcomes}; "
            f"{summary.attempts} attempts, {dt:.1f} s)"
        )
    return 0


def _safe_reach_demos(args: argparse.Namespace) -> int:
    from farl_sim.safe_reach_demos import PAPER_MIX, generate_safe_reach_demos

    total = args.episodes or sum(PAPER_MIX.values())
    scale = total / sum(PAPER_MIX.values())
    counts = {k: max(1, round(v * scale)) for k, v in PAPER_MIX.items()}
    counts["recovery"] = max(1, round(SAFE_REACH_RECOVERY_SHARE * total))
    t0 = time.perf_counter()
    summary = generate_safe_reach_demos(
        args.out, counts, args.task, seed=args.seed, storage=args.storage, image_size=args.images
    )
    mix = ", ".join(f"{k} {len(v)}" for k, v in summary.written.items())
    print(f"{sum(counts.values())} episode bags in {args.out} ({mix}; {time.perf_counter() - t0:.1f} s)")
    return 0


SAFE_REACH_RECOVERY_SHARE = 0.2
"""`farl demos --task safe_reach --kind all` adds recovery demos (FARL's third kind) beside the paper's mix,
a fifth as many as the mix holds."""


def _prepare_run(cfg, scale: float, explicit: bool) -> None:
    """The learned graph needs a complete, calibrated pre-trained run: the main job makes its default
    one (demos resumed, pre-training redone if it was interrupted); an explicit `--run` must exist."""
    from farl_bringup.graph_spec import run_dir
    from farl_bringup.pipeline import calibrate_shield, generate_heldout
    from farl_learning.run_manifest import IncompleteRun, check_run

    run = Path(run_dir(cfg))
    try:
        check_run(run)
    except IncompleteRun as err:
        if explicit:  # only the main job's own default run is made implicitly
            raise
        demos = run.parent / "demos"
        why = f"no pre-trained run at {run}" if not run.exists() else f"{err}; doing it again"
        print(f"{why}: generating demos in {demos} and pre-training first (budget x{scale:g}; a few minutes on a CPU)")
        _pretrain_default(cfg, run, demos, scale)
    if explicit or (run / "shield.json").is_file():
        return
    held = run.parent / "heldout"
    calib = CalibrationSettings()
    generate_heldout(cfg.task, held, cfg.episodes.seed, calib)
    calibrate_shield(run, held, cfg.shield.settings(), calib)


def _prepare_fosp_run(cfg, scale: float, explicit: bool, fresh: bool) -> None:
    """FOSP's graph needs a finished FOSP run: the main job makes its default one from SafeReach's demo mix
    (or the task's demos); an explicit `--run` must exist. `fresh` drops the online agent."""
    from farl_bringup.fosp_pipeline import check_fosp_run, pretrain_fosp
    from farl_bringup.graph_spec import fosp_run_dir
    from farl_learning.fosp import FOSPConfig
    from farl_learning.fosp_learner_node import ONLINE
    from farl_learning.run_manifest import IncompleteRun

    run = Path(fosp_run_dir(cfg))
    try:
        check_fosp_run(run)
    except IncompleteRun:
        if explicit:
            raise
        demos = run.parent / "demos"
        print(f"no FOSP run at {run}: generating demos in {demos} and pre-training FOSP first (budget x{scale:g})")
        _default_demos(cfg, demos)
        pretrain_fosp(cfg.task, demos, run, FOSPConfig().scaled(scale), seed=cfg.episodes.seed)
    online = run / ONLINE
    if fresh and online.exists():
        online.unlink()
        print(f"--fresh: dropped {online}; online learning starts from the pre-trained agent")
    elif online.exists():
        print(f"online learning goes on from {online} (--fresh starts from the pre-trained agent)")


def _default_demos(cfg, demos: Path) -> None:
    from farl_sim.demos import DEFAULT_EPISODES, generate_demos
    from farl_sim.safe_reach_demos import PAPER_MIX, generate_safe_reach_demos
    from farl_sim.safe_reach_tasks import SAFE_REACH

    if cfg.task in SAFE_REACH:
        counts = {**PAPER_MIX, "recovery": round(SAFE_REACH_RECOVERY_SHARE * sum(PAPER_MIX.values()))}
        generate_safe_reach_demos(demos, counts, cfg.task, seed=cfg.episodes.seed)
        return
    for kind, n in DEFAULT_EPISODES.items():
        generate_demos(cfg.task, kind, n, demos, seed=cfg.episodes.seed, resume=True)


def _pretrain_default(cfg, run: Path, demos: Path, scale: float) -> None:
    from farl_bringup.pipeline import PretrainConfig, pretrain

    _default_demos(cfg, demos)
    pre = PretrainConfig().scaled(scale)
    # Behaviour cloning is cheap and is what makes the policy reach the puck at all: keep it at 1000
    # steps per member (500 were measured to leave a policy that never touches the puck).
    for part in ("task_policy", "recovery_policy"):
        setattr(
            pre, part, replace(getattr(pre, part), bc_steps=max(1000, getattr(pre, part).bc_steps), ensemble_size=2)
        )
    pretrain(cfg.task, demos, run, pre, seed=cfg.episodes.seed)


def _cmd_sim(args: argparse.Namespace) -> int:
    from farl_bringup.sim_graph import run_sim
    from farl_common.config import ConfigError, load_config, task_config

    if args.task and args.task_name and args.task != args.task_name:
        raise ConfigError(f"two tasks given: --task {args.task} and {args.task_name}")
    task = args.task or args.task_name or (None if args.config else "fragile_push_wall")
    cfg = load_config(args.config) if args.config else task_config(task)
    if task and cfg.task != task:
        raise ConfigError(f"{args.config} is for task {cfg.task}, not {task}")
    if args.out:
        cfg.recorder.out_dir = args.out
    if args.policy:
        cfg.policy.kind = args.policy
    if args.run:
        cfg.learner.run_dir = args.run
    if args.person:
        cfg.teleop.takeover, cfg.teleop.device = True, "scripted"
    if cfg.policy.kind == "fosp":
        if args.run:
            cfg.learner.fosp_run_dir = args.run
        _prepare_fosp_run(cfg, args.pretrain_scale, explicit=bool(args.run), fresh=args.fresh)
    if cfg.policy.kind == "learned":
        _prepare_run(cfg, args.pretrain_scale, explicit=bool(args.run))
        _say_where_learning_starts(cfg, args.fresh)
    n = args.episodes or cfg.episodes.count
    shield = ""
    if cfg.policy.kind == "learned" and cfg.shield.enabled:
        from farl_bringup.graph_spec import run_dir

        sh = cfg.shield.settings(run_dir(cfg))
        shield = f", shield {sh.critic} (eps_safe {sh.eps_safe:.3f} from {sh.eps_source})"
    print(
        f"farl sim {cfg.task}: {_count(n, 'episode')}, {cfg.policy.kind} policy{shield}"
        f"{', learner on' if cfg.policy.kind in ('learned', 'fosp') else ''}, {cfg.rate_hz:g} Hz simulated, "
        f"bags -> {cfg.recorder.out_dir.replace('{task}', cfg.task)}"
    )
    t0 = time.perf_counter()

    def report(ep: dict) -> None:
        swaps = f"  swaps {ep['swaps']:3d}" if ep.get("swaps") is not None else ""
        took = ep.get("takeover_steps")
        takeover = f"  takeover {took:3d} steps" if took is not None else ""
        print(
            f"  episode {ep['episode']:3d}: return {ep['return']:8.1f}  steps {ep['steps']:3d}  "
            f"success {'yes' if ep['outcome'] == 'success' else 'no ':3s}  "
            f"failure {'YES' if _ir_failure(ep) else 'no '}{swaps}{takeover}  policy v{ep['policy_version']}",
            flush=True,
        )

    result = run_sim(cfg, episodes=n, seed=args.seed, on_episode=report, view=args.view)
    dt = time.perf_counter() - t0
    eps = result.episodes
    succ = sum(e["outcome"] == "success" for e in eps)
    fail = sum(_ir_failure(e) for e in eps)
    took = sum(bool(e.get("takeover_steps")) for e in eps)
    steps = sum(e["steps"] for e in eps)
    print(
        f"done: {_count(len(eps), 'episode')}, {_count(succ, 'success', 'successes')}, {_count(fail, 'failure')}"
        f"{f' ({took} of them takeovers)' if took else ''}, {steps} steps in {dt:.1f} s "
        f"({steps / max(dt, 1e-9):.0f} steps/s); {len(result.bags)} bags in {result.out_dir}"
    )
    if result.refused:
        print(f"note: {result.refused} actions or states were refused (see the log)")
    return 0


def _say_where_learning_starts(cfg, fresh: bool) -> None:
    """Online learning goes on from the run's online policy, run after run: say so, or (`--fresh`)
    start again from the pre-trained policy."""
    from farl_bringup.graph_spec import run_dir
    from farl_learning.checkpoint import load
    from farl_learning.learner_node import online_checkpoint

    online = online_checkpoint(run_dir(cfg), cfg.policy.checkpoint)
    if not online.exists():
        print(f"online learning starts from the pre-trained policy ({online} is written as it learns)")
    elif fresh:
        online.unlink()
        print(f"--fresh: online learning starts again from the pre-trained policy ({online} removed)")
    else:
        version = int(load(online, "task_policy").get("updates", 0))
        print(f"continuing online learning at policy version {version} from {online} (--fresh starts again)")


def _ir_failure(ep: dict) -> bool:
    """The paper's failure count: something broke, or a person had to take over."""
    return ep["outcome"] == "failure" or bool(ep.get("takeover_steps"))


def _cmd_record(args: argparse.Namespace) -> int:
    from farl_bringup.inspect_bags import inspect_bags
    from farl_bringup.record import record_config, run_record
    from farl_teleop.mapping import help_line
    from farl_teleop.sim_view import display_available

    cfg = record_config(args.task, args.mode, args.config)
    if args.no_review:
        cfg.teleop.review = False
    view = args.mode == "sim" and not args.no_view
    if view and not display_available():
        print("no display (DISPLAY is not set): the scene view is off; the status line shows the recording")
        view = False
    print(
        f"farl record {cfg.task}: {args.kind} demonstrations with the {args.device} ({args.mode} mode), "
        f"{args.episodes or 'unlimited'} episodes -> {args.out}; Ctrl-C stops (finished episodes are kept)",
        flush=True,
    )
    print(f"  {help_line(args.device)}", flush=True)
    result = run_record(
        cfg,
        kind=args.kind,
        device=args.device,
        out=args.out,
        episodes=args.episodes or 0,
        seed=args.seed,
        view=view,
        live_view=args.view,
    )
    print(f"kept {len(result.bags)} episode bags in {result.out_dir}, discarded {len(result.discarded)}")
    if result.bags:
        inspect_bags(result.out_dir)
    return 0


def _board_spec(args: argparse.Namespace):
    from farl_perception.board_calibration import BoardSpec

    spec = BoardSpec(args.board_kind, args.squares_x, args.squares_y, args.square_m, args.marker_m, args.dictionary)
    spec.board()  # an impossible board is refused here, in one line
    return spec


def _cmd_perception(args: argparse.Namespace) -> int:
    from farl_bringup import perception_tools as tools
    from farl_common.config import load_config, task_config

    if args.action == "view":
        tools.view(args.task, args.frames, Path(args.out), args.source, args.config, args.seed, args.bags)
    elif args.action == "calibrate":
        if args.points:
            tools.calibrate_from_points(Path(args.points), Path(args.out))
        else:
            tools.calibrate_from_board(Path(args.samples), Path(args.out))
    elif args.action == "board":
        tools.write_board(Path(args.out), _board_spec(args))
    elif args.action == "capture-board":
        cfg = load_config(args.config) if args.config else task_config(f"franka_{args.task}")
        if args.robot_ip:
            cfg.robot.robot_ip = args.robot_ip
        tools.capture_board(cfg, Path(args.out), args.samples, _board_spec(args))
    else:
        from farl_perception.detector_training import DetectorTrainingSettings

        settings = DetectorTrainingSettings(
            epochs=args.epochs,
            imgsz_px=args.imgsz,
            every=args.every,
            max_frames=args.max_frames,
            batch=args.batch,
            weights=args.weights,
            seed=args.seed,
        )
        cfg = load_config(args.config) if args.config else task_config(args.task)
        out = Path(args.out.replace("{task}", cfg.task))
        tools.train_detector(cfg, args.bags, out, settings)
    return 0


def _cmd_replay(args: argparse.Namespace) -> int:
    if args.ros:
        from farl_bringup.replay_ros import publish_bags

        n = publish_bags(args.path, args.speed, on_bag=lambda p, k: print(f"  {p.name}: {k} messages", flush=True))
        print(f"published {n} messages from {args.path} at {args.speed:g}x the recorded rate")
        return 0
    from farl_bringup.replay import bags_task, print_report, replay
    from farl_common.bags import read_episodes
    from farl_common.config import task_config

    bags = list(read_episodes(args.path))
    task = bags_task(bags, args.path)  # the bags say which task, and so which run, they belong to
    run = Path(args.run or f"runs/{task}/run")  # replay() refuses a run of another task
    sh = replace(task_config(task).shield.settings(), critic=args.shield).calibrated(run).with_eps(args.eps_safe)
    out = Path(args.out) if args.out else Path(args.path).parent / f"replay_{args.shield}"
    report = replay(args.path, run, sh, out, bags=bags, view=args.view)
    print_report(report, out)
    return 2 if report.errors else 0


def _count(n: int, noun: str, plural: str | None = None) -> str:
    """A count that reads as a sentence in the summary lines: "1 success", "2 successes"."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def _retrain_world_model(args: argparse.Namespace) -> int:
    """`farl pretrain --only-world-model`: a world-model variant on an otherwise unchanged run."""
    from dataclasses import replace

    from farl_bringup.pipeline import retrain_world_model
    from farl_learning.run_manifest import check_run
    from farl_learning.world_model import WorldModelConfig

    manifest = check_run(args.out)
    if manifest["task"] != args.task:
        raise ValueError(f"{args.out} is a {manifest['task']} run, not {args.task}")
    made = WorldModelConfig(**manifest["pretrain"]["world_model"])
    t0 = time.perf_counter()
    wm = retrain_world_model(args.out, args.demos, replace(made, constraint_reach=args.constraint_reach))
    print(
        f"world model of {args.out} trained again in {time.perf_counter() - t0:.0f} s (constraint_reach "
        f"{args.constraint_reach}; policies, critics and policy failures kept; loss {wm['first']['loss']:.3f} -> "
        f"{wm['last']['loss']:.3f}); calibrate it again: farl calibrate-shield --run {args.out}"
    )
    return 0


def _cmd_pretrain(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from farl_bringup.pipeline import PretrainConfig, pretrain

    if args.method == "fosp":
        return _pretrain_fosp(args)
    if args.only_world_model:
        return _retrain_world_model(args)
    t0 = time.perf_counter()
    cfg = PretrainConfig().scaled(args.scale, args.policy_failures)
    cfg.world_model = replace(cfg.world_model, constraint_reach=args.constraint_reach)
    m = pretrain(args.task, args.demos, args.out, cfg, seed=args.seed)
    wm = m["world_model"]
    print(
        f"pretrained {args.task} from {m['transitions']} transitions ({m['episodes']}) in "
        f"{time.perf_counter() - t0:.0f} s -> {args.out}"
    )
    print(
        f"  world model loss {wm['first']['loss']:.3f} -> {wm['last']['loss']:.3f} "
        f"(constraint {wm['first']['constraint']:.4f} -> {wm['last']['constraint']:.4f})"
    )
    print(
        f"  checkpoints: task_policy.pt recovery_policy.pt world_model.pt q_risk.pt reachability.pt; "
        f"TensorBoard: {Path(args.out) / 'tb'}"
    )
    return 0


def _pretrain_fosp(args: argparse.Namespace) -> int:
    from farl_bringup.fosp_pipeline import pretrain_fosp
    from farl_learning.fosp import FOSPConfig

    cfg = FOSPConfig().scaled(args.scale)
    cfg.world_model.image_size = args.image_size
    doc = pretrain_fosp(args.task, args.demos, args.out, cfg, seed=args.seed)
    ev = doc["offline_eval"]
    print(
        f"FOSP pre-trained {args.task} from {doc['transitions']} transitions ({doc['episodes']} episodes), "
        f"{cfg.offline_steps} steps in {doc['train_s']:.0f} s -> {args.out}"
    )
    print(
        f"  offline policy: J_r {ev['return']:.2f}, J_c {ev['cost']:.2f}, failure episodes {ev['failure_rate']:.0%}, "
        f"success {ev['success_rate']:.0%}"
    )
    return 0


def _finetune_fosp(args: argparse.Namespace) -> int:
    from farl_bringup.fosp_pipeline import finetune_fosp

    doc = finetune_fosp(args.run, args.steps, args.out, args.seed, expansion=not args.no_expansion)
    b, a = doc["before"], doc["after"]
    print(
        f"{len(doc['episodes'])} episodes, {doc['steps']} steps ({doc['steps_per_s']:.0f} steps/s), "
        f"cost regret rho_c {doc['cost_regret']:.4f}"
    )
    print(
        f"  J_r {b['return']:.2f} -> {a['return']:.2f}, J_c {b['cost']:.2f} -> {a['cost']:.2f}, "
        f"failure episodes {b['failure_rate']:.0%} -> {a['failure_rate']:.0%}"
    )
    return 0


def _cmd_finetune(args: argparse.Namespace) -> int:
    if args.method == "fosp":
        return _finetune_fosp(args)
    from farl_bringup.pipeline import finetune
    from farl_common.config import task_config
    from farl_learning.ppo import PPOConfig
    from farl_learning.run_manifest import check_run

    task = check_run(args.run)["task"]
    sh = None
    if args.shield != "none":
        base = replace(task_config(task).shield.settings(), critic=args.shield, recovery=args.recovery)
        sh = base.calibrated(args.run).with_eps(args.eps_safe)
        print(
            f"shield {sh.critic}: eps_safe {sh.eps_safe:.3f} ({sh.eps_source}), H {sh.horizon_steps}, "
            f"gamma_risk {sh.gamma_risk}, recovery {sh.recovery}"
        )
    person = None
    if args.person:
        from farl_teleop.takeover import PersonSettings

        person = PersonSettings(args.takeover_m, args.carry_s, args.release_s, args.takeover_end)
        print(
            f"scripted person: takes over {args.takeover_m * 100:.0f} cm from the hazard for {args.carry_s:g} s, "
            f"releases after {args.release_s:g} s ({args.takeover_end})"
        )
    trainer = finetune(
        args.run,
        args.steps,
        shield=sh,
        lagrangian=args.lagrangian,
        out=args.out,
        seed=args.seed,
        ppo=PPOConfig(anchor_coef=args.anchor),
        resume=not args.fresh,
        person=person,
    )
    eps_log = trainer.episodes
    fails = sum(e["failure"] for e in eps_log)
    took = sum(e.get("takeover_steps", 0) > 0 for e in eps_log)
    print(
        f"{len(eps_log)} episodes, {fails} failure episodes{f' ({took} with a takeover)' if person else ''}, "
        f"mean return "
        f"{sum(e['return'] for e in eps_log) / max(1, len(eps_log)):.1f}, "
        f"{sum(e['swaps'] for e in eps_log)} swaps; checkpoint {trainer.checkpoint_path}"
    )
    trainer.close()
    return 0


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from farl_bringup.pipeline import calibrate_shield

    settings = ShieldSettings(critic=args.critic, horizon_steps=args.horizon, gamma_risk=args.gamma_risk)
    c = calibrate_shield(Path(args.run), Path(args.demos), settings, _calibration(args))
    print(f"{args.critic}: {c.positives} steps just before failures, {c.negatives} steps of safe task episodes")
    print(f"{'eps_safe':>9s} {'false alarm':>12s} {'missed failure':>15s}")
    marks = (0.05, 0.1, 0.2, 0.3, 0.5, 0.8, c.eps_safe)
    shown = sorted({min(range(len(c.table)), key=lambda i: abs(c.table[i][0] - e)) for e in marks})
    for i in shown:
        e, fa, miss = c.table[i]
        print(f"{e:9.3f} {fa:12.3f} {miss:15.3f}{'   <- chosen' if e == c.eps_safe else ''}")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from farl_bringup.bench import CAMPAIGN, METHODS, BenchConfig, report, run_bench
    from farl_common.config import ConfigError

    preset = CAMPAIGN if args.campaign else {"tasks": ["fragile_push_wall"], "methods": ["farl", "uni_o4"], "seeds": 3}
    args.out = args.out or preset.get("out")
    if not args.out:
        raise ConfigError("farl bench: give --out FOLDER (or --campaign, whose folder is bench/results/campaign)")
    # the campaign's folder is judged against its criteria however it was named
    campaign = args.campaign or Path(args.out).resolve() == Path(CAMPAIGN["out"]).resolve()
    if args.report:
        print(report(args.out, campaign))
        return 0
    args.tasks = args.tasks or preset["tasks"]
    args.methods = args.methods or methods_with_seeds(sorted(METHODS))(",".join(preset["methods"]))
    args.seeds = args.seeds or preset["seeds"]
    cfg = BenchConfig(
        steps=args.steps,
        seeds=args.seeds,
        method_seeds={m: n for m, n in args.methods if n is not None},
        pretrain_scale=args.pretrain_scale,
        policy_failures=args.policy_failures,
        constraint_reach=args.constraint_reach,
        calibration=_calibration(args),
        pretrain_per_seed=not args.shared_pretraining,
    )
    seeds = ", ".join(f"{m} {cfg.seeds_of(m)}" for m, _ in args.methods)
    print(
        f"farl bench: {', '.join(args.tasks)}; seeds {seeds}; {args.steps:,} online steps each; "
        f"{'one pre-training per task' if args.shared_pretraining else 'a pre-training per seed'} -> {args.out}"
    )
    ray = None
    if args.ray is not None:
        from farl_bringup.bench_ray import RayOptions

        ray = RayOptions(address=args.ray or None, max_retries=args.ray_retries)
    run_bench(args.tasks, [m for m, _ in args.methods], args.out, cfg, jobs=args.jobs, ray=ray, campaign=campaign)
    print((Path(args.out) / "table.md").read_text())
    print(f"results: {Path(args.out) / 'results.json'}; plots: failure_episodes.png, curves.png")
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    from farl_bringup.inspect_bags import inspect_bags

    return inspect_bags(Path(args.path), plot=Path(args.plot) if args.plot else None, clean=args.clean)


def at_least(lo: float, kind: type = int):
    """An argparse type: a number of `kind` no smaller than `lo` (`--episodes 0` is refused, not ignored)."""

    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {'a whole number' if kind is int else 'a number'}, got {text!r}"
            ) from None
        if v < lo:
            raise argparse.ArgumentTypeError(f"must be >= {lo:g}, got {text}")
        return v

    return parse


def positive(kind: type = float):
    def parse(text: str):
        v = at_least(0.0, kind)(text)
        if v <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return v

    return parse


def probability(text: str) -> float:
    v = at_least(0.0, float)(text)
    if v > 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return v


def image_side(text: str) -> int:
    """The side of the world model's square camera images: its CNN halves it four times."""
    v = at_least(16)(text)
    if v % 16:
        raise argparse.ArgumentTypeError(f"must be a multiple of 16 (FOSP's is 64), got {text}")
    return v


def risk_threshold(text: str) -> float:
    """eps_safe: C_H (eq. 10) sums H + 1 discounted probabilities, so it may exceed 1 (the config's range)."""
    v = at_least(0.0, float)(text)
    if v > 10:
        raise argparse.ArgumentTypeError(f"must be between 0 and 10, got {text}")
    return v


def names_of(valid: list[str]):
    """An argparse type: a comma-separated list, each one of `valid`."""

    def parse(text: str) -> list[str]:
        names = [n.strip() for n in text.split(",") if n.strip()]
        bad = [n for n in names if n not in valid]
        if bad or not names:
            raise argparse.ArgumentTypeError(f"unknown {', '.join(bad) or '(empty)'}; choose from {', '.join(valid)}")
        return names

    return parse


def methods_with_seeds(valid: list[str]):
    """An argparse type: comma-separated METHOD or METHOD:SEEDS, each METHOD one of `valid`."""
    names = names_of(valid)

    def parse(text: str) -> list[tuple[str, int | None]]:
        items = [n.strip() for n in text.split(",") if n.strip()]
        methods = names(",".join(i.split(":", 1)[0] for i in items))
        out: list[tuple[str, int | None]] = []
        for name, item in zip(methods, items, strict=True):
            seeds = item.split(":", 1)[1] if ":" in item else None
            if seeds is not None and not (seeds.isdigit() and int(seeds) >= 1):
                raise argparse.ArgumentTypeError(f"{item}: seeds after ':' must be a whole number >= 1")
            out.append((name, int(seeds) if seeds is not None else None))
        return out

    return parse


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Every option shows its default (none where there is none)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    """farl's parsers, sub-commands included, all show their defaults."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", _Help)
        super().__init__(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    from farl_bringup.bench import CAMPAIGN, METHODS
    from farl_sim.safe_reach_tasks import SAFE_REACH
    from farl_sim.tasks import TASKS

    all_tasks = sorted([*TASKS, *SAFE_REACH])
    sim_tasks = sorted([*TASKS, "safe_reach"])  # the tasks with a config file

    p = _Parser(prog="farl", description="Failure-aware robot learning on ROS 2 (FARL).")
    _switch(p, "--debug", "show the traceback of an error, not just its line")
    p.add_argument(
        "--threads",
        type=at_least(1),
        default=None,
        help="torch CPU threads (default: $FARL_THREADS, else 1: farl's small networks gain little from more "
        "and lose badly on a busy machine; see bench/bench_threads.py)",
    )
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demos", help="generate scripted demonstrations (task, recovery, failure) as episode bags")
    d.add_argument("--task", required=True, choices=all_tasks, help="FailureBench task or SafeReach variant")
    d.add_argument(
        "--kind",
        required=True,
        choices=["task", "recovery", "failure", "all"],
        help="which demos (SafeReach, all: the FOSP paper's mix of four kinds, plus recovery demos for FARL)",
    )
    d.add_argument(
        "--episodes",
        type=at_least(1),
        default=None,
        help="episodes per kind (default: task 20, recovery 120, failure 40); SafeReach --kind all: the paper's "
        "mix in all, split 120/30/40/10 (default 200), and a fifth as many recovery demos",
    )
    d.add_argument("--out", required=True, help="folder for the bags (an interrupted set there is resumed)")
    d.add_argument("--seed", type=at_least(0), default=0, help="seed of the set")
    d.add_argument("--storage", choices=["mcap", "sqlite3"], default="mcap", help="rosbag2 storage")
    d.add_argument(
        "--images",
        type=image_side,
        default=None,
        metavar="SIZE",
        help="SafeReach: record the scene camera's colour image, SIZE x SIZE, with every state (FOSP from "
        "images: farl pretrain --method fosp --image-size SIZE); a multiple of 16, FOSP's is 64",
    )
    d.set_defaults(fn=_cmd_demos)

    s = sub.add_parser("sim", help="run the mocked sim graph of a task in process")
    s.add_argument(
        "--task", choices=sim_tasks, default=None, help="FailureBench task or safe_reach (default: fragile_push_wall)"
    )
    s.add_argument("task_name", nargs="?", choices=sim_tasks, default=None, help=argparse.SUPPRESS)
    _switch(s, "--fresh", "start online learning from the pre-trained policy (drops the run's online_policy.pt)")
    s.add_argument(
        "--episodes", type=at_least(1), default=None, help="episodes to run (default: the config's episodes.count)"
    )
    s.add_argument("--seed", type=at_least(0), default=None, help="seed of the first episode (default: the config's)")
    s.add_argument("--config", default=None, help="config file (default: config/<task>.yaml)")
    s.add_argument("--out", default=None, help="bag folder (default: the config's recorder.out_dir)")
    s.add_argument(
        "--policy", choices=["scripted", "learned", "fosp"], default=None, help="override the config's policy.kind"
    )
    s.add_argument(
        "--run",
        default=None,
        help="pre-training run folder (default: the config's learner.run_dir, or learner.fosp_run_dir for fosp)",
    )
    _switch(s, "--person", "a scripted person takes over near the hazard (teleop.takeover with device scripted)")
    view_option(s)
    s.add_argument(
        "--pretrain-scale",
        type=positive(float),
        default=0.25,
        help="budget of the automatic pre-training when there is no run yet",
    )
    s.set_defaults(fn=_cmd_sim)

    pt = sub.add_parser("pretrain", help="offline: task policy, recovery policy, world model, risk critics")
    pt.add_argument("--task", required=True, choices=all_tasks, help="FailureBench task or SafeReach variant")
    pt.add_argument("--method", choices=["farl", "fosp"], default="farl", help="which method's offline stage")
    pt.add_argument("--demos", required=True, help="folder of demo bags (task, recovery and failure)")
    pt.add_argument("--out", required=True, help="run folder for the checkpoints")
    pt.add_argument(
        "--scale", type=positive(float), default=1.0, help="multiply every gradient-step budget (quick runs)"
    )
    pt.add_argument("--seed", type=at_least(0), default=0, help="training seed")
    pt.add_argument(
        "--image-size",
        type=image_side,
        default=None,
        metavar="SIZE",
        help="fosp: the world model reads the camera image beside the state, SIZE x SIZE (FOSP's real-robot "
        "input, 64), from demos with images (farl demos --images, or bags recorded with recorder.record_images)",
    )
    policy_failures_option(pt)
    constraint_reach_option(pt)
    _switch(
        pt,
        "--only-world-model",
        "train only the world model of the finished run in --out again (with --constraint-reach), keeping its "
        "policies, critics and policy failures and its other settings (--scale and --policy-failures are not read); "
        "drops its calibration",
    )
    pt.set_defaults(fn=_cmd_pretrain)

    ft = sub.add_parser("finetune", help="online PPO from a pre-trained run, with or without the shield")
    ft.add_argument("--run", required=True, help="pre-trained run folder (farl pretrain --out)")
    ft.add_argument(
        "--method",
        choices=["farl", "fosp"],
        default="farl",
        help="fosp: FOSP's online stage from a farl pretrain --method fosp run (the shield options do not apply)",
    )
    _switch(ft, "--no-expansion", "FOSP ablation: fine-tune the offline actor itself, without eq. 21's expansion")
    ft.add_argument("--steps", type=at_least(1), required=True, help="online environment steps in all")
    ft.add_argument(
        "--shield",
        choices=[*CRITICS, "none"],
        default=_SHIELD.critic,
        help="risk critic of the shield; none is the Uni-O4 baseline",
    )
    ft.add_argument("--recovery", choices=RECOVERIES, default=_SHIELD.recovery, help="what replaces a risky action")
    ft.add_argument(
        "--eps-safe",
        type=risk_threshold,
        default=None,
        help="risk threshold (default: the run's shield.json, else the config's)",
    )
    _switch(ft, "--lagrangian", "PPO-Lagrangian")
    ft.add_argument("--out", default=None, help="default: RUN/finetune_<shield>_s<seed>")
    ft.add_argument("--seed", type=at_least(0), default=0, help="seed of the fine-tuning")
    ft.add_argument(
        "--anchor",
        type=at_least(0.0, float),
        default=0.0,
        help="weight of PPO's pull towards the pre-trained policy (PPOConfig.anchor_coef; 0: the paper's PPO); "
        "0.1 kept a shield that swaps on a quarter of the steps from collapsing the policy (README, Bounded Push)",
    )
    _switch(ft, "--fresh", "ignore an existing checkpoint instead of resuming")
    _switch(ft, "--person", "a scripted person takes over near the hazard (counts as a failure)")
    ft.add_argument("--takeover-m", type=positive(float), default=0.03, help="--person grabs this close to the hazard")
    ft.add_argument("--carry-s", type=positive(float), default=2.0, help="--person lets go after this long")
    ft.add_argument("--release-s", type=at_least(0.0, float), default=1.0, help="the policy acts again this long after")
    ft.add_argument(
        "--takeover-end",
        choices=["resume", "end_episode"],
        default="resume",
        help="after a takeover, the policy goes on or the episode ends",
    )
    ft.set_defaults(fn=_cmd_finetune)

    cs = sub.add_parser("calibrate-shield", help="choose eps_safe from held-out task and failure demos")
    cs.add_argument("--run", required=True, help="pre-trained run folder")
    cs.add_argument("--demos", required=True, help="held-out demo bags (task and failure)")
    cs.add_argument("--critic", choices=CRITICS, default=_SHIELD.critic, help="critic")
    cs.add_argument("--horizon", type=at_least(1), default=_SHIELD.horizon_steps, help="H: steps rolled ahead (eq. 10)")
    cs.add_argument(
        "--gamma-risk", type=probability, default=_SHIELD.gamma_risk, help="discount of the risk sum (eq. 10)"
    )
    calibration_options(cs)
    cs.set_defaults(fn=_cmd_calibrate)

    r = sub.add_parser("record", help="record demonstrations (task, recovery, failure) with a SpaceMouse or keyboard")
    r.add_argument("--task", required=True, help="task (sim: a FailureBench task; real: its franka_ config)")
    r.add_argument("--kind", required=True, choices=["task", "recovery", "failure"], help="what is demonstrated")
    r.add_argument("--mode", choices=["sim", "real"], default="sim", help="sim: FailureBench scene; real: franky")
    r.add_argument("--device", choices=["spacemouse", "keyboard"], default="spacemouse", help="input device")
    r.add_argument("--out", required=True, help="folder for the episode bags")
    r.add_argument(
        "--episodes", type=at_least(1), default=None, help="stop after this many kept episodes (default: Ctrl-C)"
    )
    r.add_argument("--seed", type=at_least(0), default=None, help="seed of the first scene (sim)")
    r.add_argument("--config", default=None, help="config file (default: config/<task>.yaml or franka_<task>.yaml)")
    _switch(r, "--no-review", "keep every episode without asking")
    _switch(r, "--no-view", "sim mode: no window of the scene (the status line alone)")
    view_option(r)
    r.set_defaults(fn=_cmd_record)

    pc = sub.add_parser(
        "perception", help="perception tools: view what the camera finds, calibrate the camera, train the detector"
    )
    pcs = pc.add_subparsers(dest="action", required=True)
    pv = pcs.add_parser("view", help="annotated frames (boxes, base-frame positions) as PNGs; sim: error vs truth")
    pv.add_argument("--task", required=True, help="task whose objects and colours perception looks for")
    pv.add_argument("--source", choices=["mujoco", "realsense", "bag"], default="mujoco", help="camera")
    pv.add_argument("--bags", default=None, help="bag or folder of bags with camera frames, for --source bag")
    pv.add_argument("--frames", type=at_least(1), default=50, help="frames to look at")
    pv.add_argument("--out", default="runs/perception_view", help="folder for the PNGs")
    pv.add_argument("--config", default=None, help="config with the perception section (default: the task's)")
    pv.add_argument("--seed", type=at_least(0), default=0, help="scene seed, sim")
    pk = pcs.add_parser("calibrate", help="camera-to-base extrinsics from touched points or board views")
    how = pk.add_mutually_exclusive_group(required=True)
    how.add_argument("--points", help="YAML with `camera:` and `base:` lists of [x, y, z] in metres")
    how.add_argument("--samples", help="folder of board views with hand poses (farl perception capture-board)")
    pk.add_argument("--out", required=True, help="calibration file to write (perception.calibration)")

    def board_options(p: argparse.ArgumentParser) -> None:
        g = p.add_argument_group("board (measure the print: printers scale)")
        g.add_argument(
            "--board-kind",
            choices=["charuco", "aruco_grid"],
            default="charuco",
            help="ChArUco or a grid of ArUco markers",
        )
        g.add_argument("--squares-x", type=at_least(2), default=5, help="squares (markers) across")
        g.add_argument("--squares-y", type=at_least(2), default=7, help="squares (markers) down")
        g.add_argument("--square-m", type=positive(float), default=0.04, help="square side; grid: marker + gap")
        g.add_argument("--marker-m", type=positive(float), default=0.03, help="marker side")
        g.add_argument("--dictionary", default="DICT_5X5_100", help="ArUco dictionary")

    pb = pcs.add_parser("board", help="the calibration board as a PNG to print, and its spec")
    pb.add_argument("--out", default="board.png", help="image to write; its spec goes beside it")
    board_options(pb)
    pcb = pcs.add_parser(
        "capture-board", help="real arm: take board views (hand moved by a person) with the hand pose of each"
    )
    pcb.add_argument("--task", required=True, help="task whose franka_<task> config names the robot and camera")
    pcb.add_argument("--out", required=True, help="folder for the samples (images + samples.yaml)")
    pcb.add_argument("--samples", type=at_least(4), default=12, help="views to take")
    pcb.add_argument("--config", default=None, help="config file (default: config/franka_<task>.yaml)")
    pcb.add_argument("--robot-ip", default=None, help="robot address (default: the config's)")
    board_options(pcb)
    pt = pcs.add_parser("train-detector", help="fine-tune YOLOv8n on frames from bags, labelled by the colour filter")
    pt.add_argument("--bags", required=True, help="bag or folder of bags recorded with perception.record_images")
    pt.add_argument("--task", required=True, help="task whose objects and colours label the frames")
    pt.add_argument("--config", default=None, help="config with the perception section (default: the task's)")
    pt.add_argument("--out", default="runs/detector_{task}", help="output folder")
    pt.add_argument("--epochs", type=at_least(1), default=30, help="passes over the training frames")
    pt.add_argument("--imgsz", type=at_least(32), default=416, help="network input size")
    pt.add_argument("--every", type=at_least(1), default=5, help="take every n-th frame of a bag")
    pt.add_argument("--max-frames", type=at_least(1), default=600, help="frames in all")
    pt.add_argument("--batch", type=at_least(1), default=8, help="images per training step")
    pt.add_argument("--weights", default="", help="start from these YOLOv8 weights (default: from scratch)")
    pt.add_argument("--seed", type=at_least(0), default=0, help="training seed")
    pc.set_defaults(fn=_cmd_perception)

    b = sub.add_parser(
        "bench", help="FailureBench and SafeReach comparison: demos, pretrain, fine-tune each method and seed"
    )
    _switch(
        b,
        "--campaign",
        f"the campaign: tasks {','.join(CAMPAIGN['tasks'])}, methods {','.join(CAMPAIGN['methods'])}, "
        f"{CAMPAIGN['seeds']} seeds, into {CAMPAIGN['out']} (--tasks, --methods, --seeds, --out override it)",
    )
    b.add_argument(
        "--tasks",
        type=names_of(all_tasks),
        default=None,
        help=f"comma-separated, of {', '.join(all_tasks)} (default: fragile_push_wall)",
    )
    b.add_argument(
        "--methods",
        type=methods_with_seeds(sorted(METHODS)),
        default=None,
        help=f"comma-separated, of {', '.join(sorted(METHODS))}; METHOD:N gives that method N seeds "
        "instead of --seeds (e.g. farl:5,uni_o4:5,farl_qrisk:3; default: farl,uni_o4)",
    )
    b.add_argument("--steps", type=at_least(1), default=100_000, help="online steps per run")
    b.add_argument("--seeds", type=at_least(1), default=None, help="seeds per method, 0 .. N-1 (default: 3)")
    _switch(
        b,
        "--shared-pretraining",
        "one pre-training per task (demos of seed 0) for every seed, instead of one per seed",
    )
    b.add_argument("--pretrain-scale", type=positive(float), default=1.0, help="pre-training budget factor")
    policy_failures_option(b)
    constraint_reach_option(b)
    b.add_argument(
        "--jobs",
        type=at_least(1),
        default=1,
        help="runs at once, each in its own process with one torch thread (the tasks' pre-trainings run "
        "side by side first); about one per free core",
    )
    b.add_argument(
        "--ray",
        nargs="?",
        const="",
        default=None,
        metavar="ADDRESS",
        help="run each pre-training and fine-tuning as a Ray task instead of --jobs: on the cluster at ADDRESS "
        "(what `ray start --head` prints, or 'auto'), or on a local one with no ADDRESS; needs farl[cluster]",
    )
    b.add_argument(
        "--ray-retries", type=at_least(0), default=3, help="times Ray re-runs a task whose worker died (default 3)"
    )
    calibration_options(b)
    b.add_argument(
        "--out", default=None, help="results folder: a re-run there skips the (task, method, seed) results it has"
    )
    _switch(b, "--report", "run nothing: rebuild table.md and the plots from everything in OUT/results.json")
    b.set_defaults(fn=_cmd_bench)

    rp = sub.add_parser(
        "replay", help="re-run a shield over episode bags and compare, or (--ros) publish bags on ROS 2 topics"
    )
    rp.add_argument("path", help="an episode bag or a folder of them")
    rp.add_argument("--shield", choices=CRITICS, default=_SHIELD.critic, help="critic")
    rp.add_argument("--run", default=None, help="pre-trained run of the bags' task (default: runs/<task>/run)")
    rp.add_argument(
        "--eps-safe", type=risk_threshold, default=None, help="default: the run's shield.json, else the config's"
    )
    rp.add_argument("--out", default=None, help="report and plots (default: PATH/../replay_<shield>)")
    _switch(rp, "--ros", "publish the bags' topics in time order (needs rclpy)")
    rp.add_argument("--speed", type=positive(float), default=1.0, help="--ros: multiple of the recorded rate")
    view_option(rp)
    rp.set_defaults(fn=_cmd_replay)

    i = sub.add_parser("inspect", help="list the episodes in a bag or a folder of bags")
    i.add_argument("path", help="an episode bag or a folder of them")
    i.add_argument(
        "--plot", default=None, help="also save one PNG of every episode: kind, return, steps, swaps, policy version"
    )
    _switch(
        i,
        "--clean",
        "remove the unfinished bags a crash left in .farl-partial folders (only when nothing is recording)",
    )
    i.set_defaults(fn=_cmd_inspect)
    return p


def view_option(parser: argparse.ArgumentParser) -> None:
    """The live view (rerun), the same option for sim, record and replay."""
    parser.add_argument(
        "--view",
        nargs="?",
        const="desktop",
        choices=["desktop", "web", "none"],
        default=None,
        help="live view in rerun: the scene, the shield's imagined path coloured by risk, C_H against eps_safe, "
        "swaps and takeovers, the camera, the policy version; each episode saved as <bag>.rrd beside its bag. "
        "desktop (the default) spawns the rerun viewer, web serves it on http://127.0.0.1:9090, none only "
        "saves the files (needs farl[view])",
    )


def calibration_options(parser: argparse.ArgumentParser) -> None:
    """How eps_safe is calibrated (`CalibrationSettings`): the same options for calibrate-shield and bench."""
    parser.add_argument(
        "--lookahead",
        type=at_least(1),
        default=_CALIB.lookahead_steps,
        help="steps before a failure the shield should flag (labels the held-out failures; not H)",
    )
    parser.add_argument(
        "--max-false-alarm",
        type=probability,
        default=_CALIB.max_false_alarm,
        help="largest share of safe steps flagged",
    )
    parser.add_argument(
        "--policy-rollouts",
        type=at_least(0),
        default=_CALIB.policy_rollouts,
        help="also calibrate on this many rollouts of the run's pre-trained policy (sim; written to "
        "RUN/calibration_rollouts; bench calibrates a run again when these settings differ)",
    )


def policy_failures_option(parser: argparse.ArgumentParser) -> None:
    """The size of the pre-trained policy's failure set: the same option for pretrain and bench."""
    parser.add_argument(
        "--policy-failures",
        type=at_least(0),
        default=None,
        help="sim: keep this many failing noisy rollouts of the pre-trained policy for the world model and "
        "critics (paper V.B.1; default 40 times the scale; 0: none, as on a robot). More helps where the "
        "policy fails often (Disturbed Push: README)",
    )


def constraint_reach_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--constraint-reach",
        type=at_least(0),
        default=0,
        help="the world model's constraint head learns whether a failure comes within K steps, not only at this "
        "one (0: eq. 8; a departure, README)",
    )


def _calibration(args: argparse.Namespace) -> CalibrationSettings:
    return CalibrationSettings(
        lookahead_steps=args.lookahead, max_false_alarm=args.max_false_alarm, policy_rollouts=args.policy_rollouts
    )


def _switch(parser: argparse.ArgumentParser, flag: str, help: str) -> None:
    """An on/off option (off unless given)."""
    parser.add_argument(flag, action="store_true", help=help)


FARL_SRC = Path(__file__).resolve().parents[2]
"""src/: an error that a `raise` in farl's own code sends is a message for the user; one from deeper
(torch, numpy: a shape mismatch, a dtype) is a bug, shown with its traceback."""


def _raised_by_farl(err: BaseException) -> bool:
    import linecache

    tb = err.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None or not tb.tb_frame.f_code.co_filename.startswith(str(FARL_SRC)):
        return False
    return linecache.getline(tb.tb_frame.f_code.co_filename, tb.tb_lineno).strip().startswith("raise")


_INPUTS = {
    "config": "config file not found",
    "run": "no such run folder (farl pretrain --out RUN makes one)",
    "demos": "no such bag or folder",
    "path": "no such bag or folder",
}
"""Arguments that name something to read, and what a missing one is called."""


def check_inputs_exist(args: argparse.Namespace) -> None:
    """Refuse a missing input before any heavy import: a typo costs a fraction of a second, not the
    seconds torch takes to load."""
    for name, missing in _INPUTS.items():
        value = getattr(args, name, None)
        if isinstance(value, str) and value and not Path(value).exists():
            raise FileNotFoundError(f"{value}: {missing}")


def check_writable(path: str | Path) -> None:
    """Refuse, before any work, an output nobody can write: the nearest existing folder must take a file."""
    import tempfile

    target = Path(str(path).replace("{task}", "task"))
    folder = target.parent if target.suffix else target
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise ValueError(f"--out {path}: {folder} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise ValueError(f"--out {path}: cannot write in {folder} ({err.strerror})") from None


def main(argv: list[str] | None = None) -> int:
    import logging
    import warnings

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    warnings.filterwarnings("ignore", module="metaworld")
    args = build_parser().parse_args(argv)
    from farl_common.bags import BagError
    from farl_common.config import ConfigError
    from farl_common.runtime.node import NodeError
    from farl_common.torch_threads import use_threads

    # A CheckpointError is a NodeError; a CalibrationError a ValueError raised by farl. Neither module is
    # imported here: they bring torch and OpenCV, seconds before a command can even refuse its input.
    own = (ConfigError, BagError, NodeError, FileExistsError, FileNotFoundError)
    try:
        use_threads(args.threads)
        check_inputs_exist(args)
        if getattr(args, "out", None):
            check_writable(args.out)
        return int(args.fn(args) or 0)
    except own as err:
        if args.debug:
            raise
        print(f"farl {args.command}: error: {err}", file=sys.stderr)
        return 2
    except (ValueError, RuntimeError, OSError) as err:
        # farl's own checks raise ValueError/RuntimeError with a message for the user; the same types
        # from inside torch or numpy are bugs, shown whole. A full disk or a read-only folder is one line.
        if args.debug or not (_raised_by_farl(err) or isinstance(err, OSError)):
            raise
        print(f"farl {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"farl {args.command}: interrupted; finished episode bags are kept, the one in progress is dropped",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
