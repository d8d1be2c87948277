"""Offline pre-training, the world model and its risk, the shield, PPO, checkpoints."""

from __future__ import annotations

import copy
import os
import shutil

import numpy as np
import pytest
import torch

from farl_common.bags import load_dataset
from farl_common.shield_settings import ShieldSettings
from farl_learning.action_filter import NoFilter
from farl_learning.checkpoint import FORMAT, CheckpointError, load, save_atomic
from farl_learning.data import Transitions
from farl_learning.finetune_rollouts import PPOTrainer
from farl_learning.nets import GaussianPolicy, ValueNet
from farl_learning.ppo import PPOConfig, PPOLearner, Trajectory, gae
from farl_learning.two_hot import TwoHot, symexp, symlog
from farl_learning.uni_o4 import UniO4Config, policy_from_checkpoint, train_uni_o4
from farl_learning.world_model import WorldModel, WorldModelConfig, train_world_model
from farl_safety_shield.critics import WorldModelRisk
from farl_safety_shield.loader import load_shield
from farl_safety_shield.shield import Shield, UntrustedState

torch.set_num_threads(1)


def test_two_hot_round_trips():
    th = TwoHot(101, -10, 10)
    x = torch.tensor([-500.0, -3.3, -0.01, 0.0, 0.25, 7.0, 1234.0])
    enc = th.encode(x)
    assert torch.allclose(enc.sum(-1), torch.ones(len(x)))
    assert (enc > 0).sum(-1).max() <= 2
    dec = th.decode(torch.log(enc.clamp_min(1e-12)))
    np.testing.assert_allclose(dec.numpy(), x.numpy(), rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(symexp(symlog(x)).numpy(), x.numpy(), rtol=1e-5)
    assert float(th.loss(torch.log(enc.clamp_min(1e-12)), x).max()) < 0.7  # ~entropy of a two-hot


def test_gae_matches_hand_computation():
    adv, ret = gae(np.array([1.0, 1.0]), np.array([0.5, 0.5]), 0.0, gamma=0.9, lam=1.0)
    # returns: 1 + 0.9 * 1 = 1.9 and 1
    np.testing.assert_allclose(ret, [1.9, 1.0])
    np.testing.assert_allclose(adv, [1.4, 0.5])


def test_world_model_loss_goes_down_on_a_fixed_batch(demo_dir):
    data = Transitions.from_dataset(load_dataset(demo_dir).select(["task", "failure"]))
    cfg = WorldModelConfig(latent_dim=32, hidden=64, steps=1)
    wm = WorldModel(39, 4, cfg)
    target = WorldModel(39, 4, cfg)
    target.load_state_dict(wm.state_dict())
    batch = data.windows(64, cfg.horizon, torch.Generator().manual_seed(0), failure_fraction=0.5)
    opt = torch.optim.Adam(wm.parameters(), lr=1e-3)
    first = wm.loss(batch, target)[0].detach()
    for _ in range(60):
        loss, parts = wm.loss(batch, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.5 * float(first)
    assert set(parts) == {"reward", "value", "consistency", "constraint", "decoder"}


def test_windows_stop_at_episode_ends_and_failures(demo_dir):
    data = Transitions.from_dataset(load_dataset(demo_dir))
    w = data.windows(512, 5, torch.Generator().manual_seed(1), failure_fraction=0.5)
    m = w["mask"]
    assert torch.all(m[0] == 1) and torch.all(m[1:] <= m[:-1])  # validity never comes back
    # after a failure step, nothing of that window is valid
    after_fail = torch.cumsum(w["done"] * m, 0) - w["done"] * m
    assert torch.all(m[after_fail > 0] == 0)
    assert float((w["cost"] * m).sum()) > 0


def test_a_constraint_label_reaching_back_stays_in_its_episode(demo_dir):
    data = Transitions.from_dataset(load_dataset(demo_dir))
    fails = torch.nonzero(data.cost > 0.5).squeeze(-1).tolist()
    assert fails
    reach = data.with_cost_reaching_back(3)
    ep = data.episode
    expected = torch.zeros_like(data.cost)
    for f in fails:  # the failing step and the 3 before it that are in its episode
        expected[[i for i in range(max(0, f - 3), f + 1) if ep[i] == ep[f]]] = 1.0
    assert torch.equal(reach.cost, expected) and torch.equal(data.with_cost_reaching_back(0).cost, data.cost)
    assert torch.equal(reach.obs, data.obs) and float(reach.cost.sum()) > len(fails)
    with pytest.raises(ValueError, match="constraint_reach"):
        train_world_model(data, WorldModelConfig(constraint_reach=-1), progress=False)


def test_uni_o4_bc_imitates_and_improvement_is_kept_only_when_better(demo_dir):
    data = Transitions.from_dataset(load_dataset(demo_dir).select(["task"]))
    cfg = UniO4Config(ensemble_size=2, hidden=64, bc_steps=300, critic_steps=100, improve_rounds=2, improve_steps=20)
    res = train_uni_o4(data, cfg, progress=False)
    with torch.no_grad():
        mean, _ = res.policy(data.obs)
    untrained = GaussianPolicy(39, 4, 64)
    with torch.no_grad():
        base = (untrained(data.obs)[0] - data.action).pow(2).mean()
    assert float((mean - data.action).pow(2).mean()) < 0.5 * float(base)
    for h in res.history:
        if h["round"] > 0 and h["accepted"]:
            prev = next(x for x in res.history if x["member"] == h["member"] and x["round"] == h["round"] - 1)
            assert h["ope"] > prev["ope"]
    few = Transitions.from_dataset(load_dataset(demo_dir).select(["task"]))
    few.reward = few.reward[:10]
    with pytest.raises(ValueError, match="too few"):
        train_uni_o4(few, cfg, progress=False)


def test_risk_is_high_heading_into_the_wall_and_low_when_safe(demo_dir):
    ds = load_dataset(demo_dir)
    data = Transitions.from_dataset(ds.select(["task", "failure"]))
    wm, _ = train_world_model(
        data, WorldModelConfig(latent_dim=32, hidden=128, steps=400, batch_size=128), progress=False
    )
    pol = train_uni_o4(
        Transitions.from_dataset(ds.select(["task"])),
        UniO4Config(ensemble_size=1, hidden=64, bc_steps=200, critic_steps=10, improve_rounds=0),
        progress=False,
    ).policy
    critic = WorldModelRisk(wm, pol, horizon=3, gamma_risk=0.9)
    fail_eps = [e for e in ds.episodes if e.failed]
    near = np.concatenate([e.obs[-3:] for e in fail_eps]), np.concatenate([e.action[-3:] for e in fail_eps])
    safe_eps = [e for e in ds.episodes if e.kind == "task"]
    safe = np.concatenate([e.obs for e in safe_eps]), np.concatenate([e.action for e in safe_eps])
    r_near = critic.risk(torch.as_tensor(near[0]), torch.as_tensor(near[1]))
    r_safe = critic.risk(torch.as_tensor(safe[0]), torch.as_tensor(safe[1]))
    assert float(r_near.mean()) > 0.3 and float(r_safe.mean()) < 0.1, (r_near.mean(), r_safe.mean())


class FixedRisk:
    """A critic whose answers the test dictates, to check the shield's rule (eq. 11) exactly."""

    name = "fixed"

    def __init__(self, values):
        self.values = values

    def risk(self, obs, action):
        if isinstance(self.values, Exception):
            raise self.values
        return torch.as_tensor(self.values, dtype=torch.float32)


class ConstantRecovery:
    name = "constant"

    def actions(self, obs):
        return torch.full((obs.shape[0], 4), -0.5)


def test_shield_swaps_exactly_above_eps_and_fails_safe():
    obs, prop = np.zeros((4, 39)), np.full((4, 4), 0.25)
    res = Shield(FixedRisk([0.0, 0.3, 0.3000001, float("nan")]), ConstantRecovery(), 0.3).filter(obs, prop)
    assert res.swapped.tolist() == [False, False, True, True]
    np.testing.assert_array_equal(res.executed[0], prop[0])
    np.testing.assert_array_equal(res.executed[2], [-0.5] * 4)
    assert np.isnan(res.risk[3])
    broken = Shield(FixedRisk(RuntimeError("model file gone")), ConstantRecovery(), 0.3)
    res = broken.filter(obs, prop)
    assert res.swapped.all() and np.isnan(res.risk).all() and broken.errors == 1
    nan_prop = prop.copy()
    nan_prop[1, 2] = np.nan
    res = Shield(FixedRisk([0.0] * 4), ConstantRecovery(), 0.3).filter(obs, nan_prop)
    assert res.swapped.tolist() == [False, True, False, False] and np.all(np.isfinite(res.executed))
    bad_obs = obs.copy()
    bad_obs[0, 0] = np.inf
    with pytest.raises(UntrustedState):
        Shield(FixedRisk([0.0] * 4), ConstantRecovery(), 0.3).filter(bad_obs, prop)
    with pytest.raises(ValueError):
        Shield(FixedRisk([0.0]), ConstantRecovery(), float("nan"))


def test_no_filter_is_the_identity():
    res = NoFilter().filter(np.zeros((2, 39)), np.ones((2, 4)))
    assert not res.swapped.any() and np.all(res.executed == 1)


def test_ppo_improves_a_policy_on_a_toy_task():
    """Reward -|a - target(s)|^2 with target = tanh of a fixed projection: one-step episodes."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    proj = rng.normal(size=(39, 4)) / 6
    policy, value = GaussianPolicy(39, 4, 64, init_log_std=-0.5), ValueNet(39, 64)
    learner = PPOLearner(
        policy,
        value,
        PPOConfig(
            policy_lr=3e-3,
            value_lr=3e-3,
            epochs=8,
            minibatch_size=64,
            reward_scale=1.0,
            target_kl=1.0,
            value_warmup_updates=0,
            learn_log_std=True,
        ),
    )

    def batch(n=256):
        s = rng.normal(size=(n, 39)).astype(np.float32)
        with torch.no_grad():
            a = policy.act(torch.as_tensor(s)).numpy()
        r = -((a - np.tanh(s @ proj)) ** 2).sum(1)
        return s, a, r

    start = float(np.mean(batch(1024)[2]))
    for _ in range(25):
        s, a, r = batch()
        trajs = [
            learner.on_policy_trajectory(s[i : i + 1], a[i : i + 1], r[i : i + 1], np.zeros(1), True, s[i])
            for i in range(len(s))
        ]
        learner.update(trajs)
    end = float(np.mean(batch(1024)[2]))
    assert end > start + 0.3 * abs(start), (start, end)


def test_checkpoint_errors_name_the_file(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"junk\.pt: unreadable"):
        load(tmp_path / "junk.pt")
    save_atomic(tmp_path / "a.pt", {"kind": "world_model"})
    with pytest.raises(CheckpointError, match="expected a 'task_policy'"):
        load(tmp_path / "a.pt", "task_policy")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_pretrain_writes_every_checkpoint(tiny_run):
    for name in ("task_policy", "recovery_policy", "world_model", "q_risk", "reachability"):
        assert (tiny_run / f"{name}.pt").is_file()
    assert (tiny_run / "pretrain.json").is_file() and any((tiny_run / "tb").iterdir())
    for critic in ("world_model", "q_risk", "reachability"):
        for recovery in ("policy", "mppi"):
            shield = load_shield(tiny_run, ShieldSettings(critic=critic, recovery=recovery))
            res = shield.filter(np.zeros((3, 39)) + 0.1, np.zeros((3, 4)))
            assert res.executed.shape == (3, 4) and np.all(np.isfinite(res.risk))
    with pytest.raises(CheckpointError, match="no such run"):
        load_shield(tiny_run / "nope", ShieldSettings())
    with pytest.raises(ValueError, match="critic must be one of"):
        ShieldSettings(critic="oracle")


def _trainer(run, out, steps, **ppo):
    data = load(run / "task_policy.pt")
    pol = policy_from_checkpoint(data).train()
    from farl_learning.uni_o4 import value_from_checkpoint

    cfg = PPOConfig(
        total_steps=steps,
        num_envs=2,
        steps_per_env=60,
        horizon_steps=60,
        epochs=2,
        seed=3,
        value_warmup_updates=0,
        policy_lr=1e-4,
        **ppo,
    )
    shield = load_shield(run, ShieldSettings(), task_policy=pol)
    return PPOTrainer("fragile_push_wall", pol, value_from_checkpoint(data), cfg, shield, out)


def test_finetune_resumes_bit_identically(tiny_run, tmp_path):
    straight = _trainer(tiny_run, tmp_path / "a", 240)
    straight.train(progress=False)
    first = _trainer(tiny_run, tmp_path / "b", 120)
    first.train(progress=False)  # "killed" after its first updates; its checkpoint is on disk
    resumed = _trainer(tiny_run, tmp_path / "b", 240)
    assert resumed.resume_if_possible() and resumed.steps == first.steps
    resumed.train(progress=False)
    assert resumed.steps == straight.steps and resumed.episodes == straight.episodes
    for (k, a), (_, b) in zip(straight.policy.state_dict().items(), resumed.policy.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    initial = policy_from_checkpoint(load(tiny_run / "task_policy.pt")).state_dict()
    assert not torch.equal(initial["net.0.weight"], straight.policy.state_dict()["net.0.weight"])  # it learned


def test_a_checkpoint_carrying_a_pickled_object_is_refused_without_running_it(tmp_path) -> None:
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    path = tmp_path / "task_policy.pt"
    torch.save({"format": FORMAT, "kind": "task_policy", "x": Payload()}, path)
    with pytest.raises(CheckpointError, match=r"refused: it carries pickled Python objects \(posix.mkdir\)") as err:
        load(path, "task_policy")
    assert "\n" not in str(err.value)
    assert not marker.exists()


class _ConstantPolicy(torch.nn.Module):
    """Always the same action: C_H's rollout of it is then one fixed action sequence."""

    def __init__(self, action):
        super().__init__()
        self.action = torch.as_tensor(action, dtype=torch.float32)

    def forward(self, obs):
        return self.action.expand(obs.shape[0], -1), torch.zeros(obs.shape[0], len(self.action))


def test_mppi_scores_risk_as_c_h_and_plans_without_the_recovery_policy(tiny_run, tmp_path):
    from farl_learning.world_model import world_model_from_checkpoint
    from farl_safety_shield.recovery import MPPIRecovery

    wm = world_model_from_checkpoint(load(tiny_run / "world_model.pt", "world_model"))
    H, gamma = 4, 0.8
    obs = torch.rand(5, 39) * 0.2
    c = torch.tensor([0.3, -0.2, 0.1, 0.0])
    c_h = WorldModelRisk(wm, _ConstantPolicy(c), H, gamma).risk(obs, c.expand(5, -1))
    mppi = MPPIRecovery(wm, eps_safe=0.5, horizon=H, gamma_risk=gamma)
    _, risk = mppi._score(wm.encode(obs), c.view(1, 1, 1, 4).expand(H + 1, 5, 1, 4))
    torch.testing.assert_close(risk[:, 0], c_h, atol=1e-6, rtol=1e-5)  # H + 1 terms, as eq. 10
    assert mppi.device.type == ("cuda" if torch.cuda.is_available() else "cpu")  # the GPU when there is one
    plans = [MPPIRecovery(wm, 0.5, H, gamma, seed=3).actions(obs) for _ in range(2)]
    assert plans[0].device.type == "cpu" and plans[0].shape == (5, 4)
    torch.testing.assert_close(plans[0], plans[1], atol=0, rtol=0)  # a seed repeats its plans

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / "recovery_policy.pt").unlink()
    shield = load_shield(run, ShieldSettings(recovery="mppi", eps_safe=0.0))  # every proposal is swapped
    res = shield.filter(np.zeros((3, 39)) + 0.1, np.zeros((3, 4)))
    assert res.swapped.all() and np.all(np.abs(res.executed) <= 1) and np.isfinite(res.executed).all()
    with pytest.raises(CheckpointError, match="recovery_policy"):
        load_shield(run, ShieldSettings(recovery="policy"))


def test_q_risk_and_fosp_reachability_are_different_critics(demo_dir):
    """Recovery RL's Q_risk bootstraps with the task policy's next action, FOSP's REF (eq. 30) with the
    data's own and stops where the data's trajectory ends: same (s, a), different targets and weights."""
    from farl_safety_shield.critics import QRiskCritic, ReachabilityCritic, RiskQConfig

    def target(s2, a2):  # a stand-in critic whose answer is the first action component, twice
        return a2[:, 0].expand(2, -1)

    def policy(s2):
        return torch.full((len(s2), 4), 0.2), None

    c = torch.tensor([0.0, 0.0, 1.0])
    s2, a2 = torch.zeros(3, 39), torch.full((3, 4), 0.9)
    has_next = torch.tensor([True, False, False])
    q = QRiskCritic.backup_target(target, policy, 0.5, c, s2, a2, has_next)
    u = ReachabilityCritic.backup_target(target, policy, 0.5, c, s2, a2, has_next)
    torch.testing.assert_close(q, torch.tensor([0.1, 0.1, 1.0]))  # under pi: 0.5 * 0.2
    torch.testing.assert_close(u, torch.tensor([0.45, 0.0, 1.0]))  # under the data: 0.5 * 0.9; none past the end

    data = Transitions.from_dataset(load_dataset(demo_dir))
    pol = GaussianPolicy(39, 4)
    cfg = RiskQConfig(steps=30, batch_size=64)
    qr = QRiskCritic.train(data, pol, cfg, progress=False)
    reach = ReachabilityCritic.train(data, pol, cfg, progress=False)
    assert not torch.equal(qr.q.heads[0][0].weight, reach.q.heads[0][0].weight)
    obs, act = data.obs[:50], data.action[:50]
    assert (qr.risk(obs, act) - reach.risk(obs, act)).abs().max() > 1e-4


def test_fused_c_h_equals_the_module_rollout(tiny_run, demo_dir):
    """The shield's fused inference path gives eq. 10's C_H as the world model's modules compute it, to
    1e-5: on states of the demos and far from them, after PPO-like in-place updates of the policy and a
    load of its state (read live), after set_policy, and it steps aside for networks it does not know."""
    from farl_learning.world_model import world_model_from_checkpoint
    from farl_safety_shield.fused_rollout import FusedRollout, Unfusable

    wm = world_model_from_checkpoint(load(tiny_run / "world_model.pt", "world_model"))
    pol = policy_from_checkpoint(load(tiny_run / "task_policy.pt"))
    ds = load_dataset(demo_dir)
    gen = torch.Generator().manual_seed(0)
    obs = torch.cat([torch.as_tensor(ds.obs[:200], dtype=torch.float32), torch.randn(56, 39, generator=gen) * 3])
    act = torch.rand(len(obs), 4, generator=gen) * 2 - 1
    critic = WorldModelRisk(wm, pol, horizon=5, gamma_risk=0.9)
    assert isinstance(critic.fused, FusedRollout) and critic.fused.traced is not None  # the recorded graph runs

    def same():
        fused, reference = critic.risk(obs, act), critic.risk_unfused(obs, act)
        torch.testing.assert_close(fused, reference, atol=1e-5, rtol=1e-5)
        for n in (1, 3):  # one graph for every batch size, in any order
            torch.testing.assert_close(critic.risk(obs[:n], act[:n]), reference[:n], atol=1e-5, rtol=1e-5)
        return reference

    first = same()
    graph, critic.fused.traced = critic.fused.traced, None
    same()  # the eager path a torch without the tracer takes
    critic.fused.traced = graph
    with torch.no_grad():
        for p in pol.net.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    assert not torch.allclose(same(), first)  # the update changed the risk, and both paths saw it
    pol.load_state_dict(policy_from_checkpoint(load(tiny_run / "task_policy.pt")).state_dict())
    torch.testing.assert_close(same(), first)  # a resume's load is seen too: the risk is the first again
    other = policy_from_checkpoint(load(tiny_run / "task_policy.pt"))
    with torch.no_grad():
        other.norm.mean.add_(0.5)  # a different normaliser: folded into the decoder afresh
    critic.set_policy(other)
    same()
    critic.set_policy(_ConstantPolicy(torch.zeros(4)))
    assert critic.fused is None and critic.risk(obs, act).shape == (len(obs),)
    wm.constraint = torch.nn.Sequential(torch.nn.Linear(wm.cfg.latent_dim + 4, 1))
    with pytest.raises(Unfusable):
        FusedRollout(wm, pol, 5, 0.9)


def _rejection_batch(policy: GaussianPolicy, n: int = 512) -> list[Trajectory]:
    """One-step episodes of zero reward under a zero value: every advantage is 0, so only rejected
    draws (those with a[0] > 0, as if a shield refused them) can move the policy."""
    rng = np.random.default_rng(1)
    s = rng.normal(size=(n, 39)).astype(np.float32)
    with torch.no_grad():
        draw = policy.act(torch.as_tensor(s)).clamp(-1, 1)
        logp = policy.executed_log_prob(torch.as_tensor(s), draw).numpy()
    draw = draw.numpy()
    trajs = []
    for i in range(n):
        refused = bool(draw[i, 0] > 0)
        executed = np.zeros(4, dtype=np.float32) if refused else draw[i]
        rej = (draw[i], float(logp[i])) if refused else None
        step = ([s[i]], [executed], [float(logp[i])], [0.0], [0.0], [0.0])
        trajs.append(Trajectory(*step, terminated=True, last_obs=s[i], swapped=[refused], rejected=[rej]))
    return trajs


@pytest.mark.parametrize("rejected_advantage", [0.0, -1.0])
def test_ppo_makes_rejected_proposals_less_likely_only_when_asked(rejected_advantage):
    torch.manual_seed(0)
    policy, value = GaussianPolicy(39, 4, 64, init_log_std=-0.5), ValueNet(39, 64)
    torch.nn.init.zeros_(value.net[-1].weight)
    torch.nn.init.zeros_(value.net[-1].bias)
    cfg = PPOConfig(policy_lr=1e-3, value_warmup_updates=0, target_kl=1.0, rejected_advantage=rejected_advantage)
    learner = PPOLearner(policy, value, cfg)
    probe = torch.as_tensor(np.random.default_rng(2).normal(size=(256, 39)), dtype=torch.float32)
    with torch.no_grad():
        before = policy.act(probe, deterministic=True)[:, 0].mean().item()
    for _ in range(3):
        learner.update(_rejection_batch(policy))
    with torch.no_grad():
        after = policy.act(probe, deterministic=True)[:, 0].mean().item()
    if rejected_advantage == 0.0:
        assert after == pytest.approx(before, abs=1e-6)  # no own-step signal, nothing rejected counts
    else:
        assert after < before - 0.1, (before, after)


def _drift_batch(policy: GaussianPolicy, rng: np.random.Generator, n: int = 256) -> list[Trajectory]:
    """One-step episodes rewarded by a[0]: the policy term pushes a[0] up on the own steps (s[0] < 0);
    the steps with s[0] >= 0 are swapped, outside the policy term, as where a shield acted."""
    s = rng.normal(size=(n, 39)).astype(np.float32)
    with torch.no_grad():
        draw = policy.act(torch.as_tensor(s)).clamp(-1, 1)
        logp = policy.executed_log_prob(torch.as_tensor(s), draw).numpy()
    a = draw.numpy()
    return [
        Trajectory([s[i]], [a[i]], [float(logp[i])], [0.0], [float(a[i, 0])], [0.0], True, s[i], [bool(s[i, 0] >= 0)])
        for i in range(n)
    ]


def test_the_anchor_holds_the_policy_near_the_offline_one_where_the_shield_acted():
    probe = torch.as_tensor(np.random.default_rng(3).normal(size=(512, 39)), dtype=torch.float32)
    probe[:, 0] = probe[:, 0].abs()  # the states where the shield acted: no policy term there
    torch.manual_seed(0)
    offline = GaussianPolicy(39, 4, 64, init_log_std=-0.5)
    drift = {}
    for coef in (0.0, 10.0):
        policy, value = copy.deepcopy(offline), ValueNet(39, 64)
        cfg = PPOConfig(policy_lr=1e-3, value_warmup_updates=0, target_kl=1.0, anchor_coef=coef, seed=0)
        learner = PPOLearner(policy, value, cfg)
        rng = np.random.default_rng(0)
        for _ in range(5):
            learner.update(_drift_batch(policy, rng))
        with torch.no_grad():
            drift[coef] = (policy.dist(probe).mean - offline.dist(probe).mean).pow(2).sum(-1).mean().item()
        state = learner.state()
        assert (state["anchor"] is None) == (coef == 0.0)
    # the policy term's push on the own steps carries over to the swapped states; the anchor holds them
    assert drift[0.0] > 1e-3, drift
    assert drift[10.0] < 0.25 * drift[0.0], drift
    # a resumed learner keeps the offline policy as its anchor, not the weights it was built from
    resumed = PPOLearner(copy.deepcopy(policy), ValueNet(39, 64), cfg)
    resumed.restore(state)
    for mine, theirs in zip(resumed.anchor.parameters(), offline.parameters(), strict=True):
        torch.testing.assert_close(mine, theirs)


@pytest.mark.parametrize(
    ("field_name", "value"),
    [("anchor_coef", -0.1), ("policy_lr", 0.0), ("gamma", 1.5), ("clip_eps", float("nan")), ("ent_coef", float("inf"))],
)
def test_ppo_config_refuses_settings_that_would_train_something_else(field_name, value):
    with pytest.raises(ValueError, match=field_name):
        PPOConfig(**{field_name: value})
    PPOConfig(**{field_name: 0.5})  # a sane value of the same field passes


def test_ppo_keeps_the_clipped_draw_with_its_clipped_action_likelihood(tiny_run, tmp_path):
    """The policy term sees the draw as executed, clipped to the box, as the graph's bags hold it."""
    tr = _trainer(tiny_run, tmp_path / "ft", 120)
    with torch.no_grad():
        tr.policy.log_std.fill_(0.3)  # wide enough that many draws leave the [-1, 1] box
    trajs = tr.collect()
    obs = np.concatenate([np.asarray(t.obs) for t in trajs])
    act = np.concatenate([np.asarray(t.act) for t in trajs])
    own = ~np.concatenate([np.asarray(t.swapped) for t in trajs])
    logp = np.concatenate([np.asarray(t.logp) for t in trajs])
    assert own.any() and (np.abs(act) <= 1).all() and (np.abs(act[own]) == 1).any()  # clipped draws, some on a bound
    o, a = torch.as_tensor(obs, dtype=torch.float32), torch.as_tensor(act, dtype=torch.float32)
    with torch.no_grad():
        again = tr.policy.executed_log_prob(o, a)
        density = tr.policy.log_prob(o, a)
    np.testing.assert_allclose(again.numpy(), logp, rtol=1e-5, atol=1e-5)
    on_bound = (np.abs(act) == 1).any(axis=1)
    assert not np.allclose(again.numpy()[on_bound], density.numpy()[on_bound])  # the mass, not the density
    tr.close()
    assert all(r is None for t in trajs for r in t.rejected)  # kept only when PPO is to learn from them


def test_the_clipped_action_likelihood_is_the_gaussian_mass_the_box_gives_each_action():
    """By hand: inside the box the density; on a bound the probability of every draw beyond it. Over
    the box the mass sums to 1, which the density alone does not."""
    from math import erf, log, pi, sqrt

    policy = GaussianPolicy(3, 2, 16, init_log_std=log(0.5))
    obs = torch.zeros(1, 3)
    with torch.no_grad():
        mean = policy(obs)[0][0].numpy().astype(float)

    def cdf(x: float, m: float) -> float:
        return 0.5 * (1 + erf((x - m) / (0.5 * sqrt(2))))

    def density(x: float, m: float) -> float:
        return log(1 / (0.5 * sqrt(2 * pi))) - (x - m) ** 2 / (2 * 0.25)

    act = torch.tensor([[1.0, 0.3], [-1.0, -1.0]])
    got = policy.executed_log_prob(obs.expand(2, 3), act).detach().numpy()
    want = [
        log(1 - cdf(1.0, mean[0])) + density(0.3, mean[1]),
        log(cdf(-1.0, mean[0])) + log(cdf(-1.0, mean[1])),
    ]
    np.testing.assert_allclose(got, want, rtol=1e-5)
    inside = np.linspace(-1, 1, 4001)[1:-1]
    mass = np.trapezoid(np.exp([density(x, mean[0]) for x in inside]), inside)
    assert mass + 1 - cdf(1.0, mean[0]) + cdf(-1.0, mean[0]) == pytest.approx(1.0, abs=1e-3)


def test_the_trainer_keeps_each_rejected_draw_with_its_log_prob(tiny_run, tmp_path):
    tr = _trainer(tiny_run, tmp_path / "ft", 120, rejected_advantage=-1.0)
    with torch.no_grad():
        tr.policy.log_std.fill_(0.3)
    first = tr.collect()  # this tiny run's calibrated eps_safe swaps on none: set it to half the risks seen
    obs = np.concatenate([np.asarray(t.obs) for t in first])
    act = np.concatenate([np.asarray(t.act) for t in first])
    tr.filter.eps_safe = float(np.median(tr.filter.risk(obs, act)))
    trajs = tr.collect()
    swapped = np.concatenate([np.asarray(t.swapped) for t in trajs])
    kept = [(o, r) for t in trajs for o, r in zip(t.obs, t.rejected, strict=True) if r is not None]
    assert swapped.any() and not swapped.all() and len(kept) == swapped.sum()  # the shield's swaps, no person
    obs = torch.as_tensor(np.stack([o for o, _ in kept]), dtype=torch.float32)
    draws = torch.as_tensor(np.stack([r[0] for _, r in kept]), dtype=torch.float32)
    assert (draws.abs() <= 1).all()  # as proposed: clipped to the box
    with torch.no_grad():
        again = tr.policy.executed_log_prob(obs, draws).numpy()
    np.testing.assert_allclose(again, [r[1] for _, r in kept], rtol=1e-5, atol=1e-5)
    tr.close()


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch's note on the stand-in pickle
@pytest.mark.parametrize(
    "content", [b"garbage", b"PK\x03\x04 not a zip", b"\x80\x04K\x01."], ids=["text", "zip", "pickle"]
)
def test_an_unreadable_checkpoint_names_the_file_and_what_farl_expected_never_an_unsafe_load(tmp_path, content):
    """torch's own message for a file it cannot load advises `weights_only=False`, which would run any
    code a pickled file carries: farl's error names the file and what it expected instead."""
    path = tmp_path / "task_policy.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as err:
        load(path, "task_policy")
    text = str(err.value)
    assert text.startswith(f"{path}: ") and "task_policy checkpoint (farl-checkpoint-1)" in text
    assert "weights_only" not in text and "\n" not in text
