"""FOSP: each equation against a case computed by hand, the replay's alignment, the agent's acting and
checkpoints, and the CLI's two stages on SafeReach at a small budget."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from farl_learning import fosp_math as fm
from farl_learning.fosp import FOSPAgent, FOSPConfig, FOSPPolicy
from farl_learning.fosp_data import SequenceBuffer
from farl_learning.rssm import RSSMConfig


def test_expectile_loss_weights_underestimates_by_kappa_and_overestimates_by_one_minus_kappa():
    # diffs q - v = +1 (V below Q: weight kappa) and -1 (V above Q: weight 1 - kappa)
    loss = fm.expectile_loss(torch.tensor([1.0, -1.0]), torch.tensor([0.0, 0.0]), kappa=0.8)
    assert loss.item() == pytest.approx((0.8 * 1 + 0.2 * 1) / 2)
    assert fm.expectile_loss(torch.tensor([3.0]), torch.tensor([1.0]), kappa=0.8).item() == pytest.approx(0.8 * 4)


def test_lambda_returns_by_hand():
    # R^2 = V(s2) = 4; R^1 = 0 + .5 (.5 * 4 + .5 * 4) = 2; R^0 = 1 + .5 (.5 * V(s1) + .5 * R^1) = 1 + .5 (1 + 1) = 2
    rewards, values = torch.tensor([1.0, 0.0]), torch.tensor([2.0, 4.0])
    out = fm.lambda_returns(rewards, values, torch.ones(2), gamma=0.5, lam=0.5)
    assert out.tolist() == pytest.approx([2.0, 2.0])
    # the first step ends the episode: nothing is bootstrapped past it
    cut = fm.lambda_returns(rewards, values, torch.tensor([0.0, 1.0]), gamma=0.5, lam=0.5)
    assert cut.tolist() == pytest.approx([1.0, 2.0])
    # lam = 0 is one-step TD, lam = 1 the discounted sum to the horizon plus V(s^H)
    assert fm.lambda_returns(rewards, values, torch.ones(2), 0.5, 0.0).tolist() == pytest.approx([2.0, 2.0])
    assert fm.lambda_returns(rewards, values, torch.ones(2), 0.5, 1.0).tolist() == pytest.approx([1 + 0.25 * 4, 2.0])


def test_reachability_recursion_is_the_max_of_violation_now_and_discounted_later():
    out = fm.reachability_target(torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.5, 0.5, 0.0]), gamma_u=0.99)
    assert out.tolist() == pytest.approx([1.0, 0.495, 0.0])
    # unrolled along a trajectory that violates at its third state: u = gamma_u^(steps to the violation)
    u = torch.tensor(0.0)
    for viol in (1.0, 0.0, 0.0):
        u = fm.reachability_target(torch.tensor(viol), u, 0.9)
    assert u.item() == pytest.approx(0.81)


def test_augmented_lagrangian_penalty_eq17_both_branches_and_the_multiplier_step_eq27():
    active = fm.augmented_lagrangian_penalty(torch.tensor([0.5]), lam_p=0.01, mu=1e-6)
    assert active.item() == pytest.approx(0.01 * 0.5 + 1e-6 / 4 * 0.25)
    # lambda_p + mu/2 V^c = 0.01 - 0.5 < 0: the constant branch -lambda_p^2 / mu
    inactive = fm.augmented_lagrangian_penalty(torch.tensor([-1.0]), lam_p=0.01, mu=1.0)
    assert inactive.item() == pytest.approx(-1e-4)
    assert fm.lagrange_multiplier_step(0.01, 1e-6, 0.5) == pytest.approx(0.01 + 2.5e-7)
    assert fm.lagrange_multiplier_step(0.01, 1.0, -1.0) == 0.0


def test_offline_actor_weights_eq19_by_hand_and_capped():
    w = fm.offline_actor_weights(torch.tensor(0.1), torch.tensor(0.2), torch.tensor(0.25), 10, 10, max_weight=100)
    assert w.item() == pytest.approx(0.75 * math.e + 0.25 * math.exp(-2))
    # u = 1: only the cost advantage counts; a cheap action (A^c < 0) gets the larger weight
    cheap = fm.offline_actor_weights(torch.tensor(5.0), torch.tensor(-0.1), torch.tensor(1.0), 10, 10, 100)
    assert cheap.item() == pytest.approx(math.e)
    big = fm.offline_actor_weights(torch.tensor(1.0), torch.tensor(0.0), torch.tensor(0.0), 10, 10, max_weight=100)
    assert big.item() == 100.0


def test_online_actor_weights_eq23_by_hand():
    w = fm.online_actor_weights(torch.tensor(0.1), torch.tensor(0.2), torch.tensor(0.25), 10, 10)
    assert w.item() == pytest.approx(0.75 * 10 * 0.1 - 0.25 * 10 * 0.2)


def test_expansion_selection_eq21_22_by_hand():
    assert fm.normalised_q(torch.tensor(2.0), torch.tensor(1.0), 4.0, 2.0).item() == pytest.approx(0.0)
    p = fm.expansion_probabilities(torch.tensor([0.0, 0.1]), inverse_temperature=10.0)
    assert p.tolist() == pytest.approx([1 / (1 + math.e), math.e / (1 + math.e)])
    assert fm.discounted_bound(1.0, 0.5, 2) == pytest.approx(1.75)


def test_the_replay_pairs_each_state_with_the_action_reward_and_cost_that_led_to_it():
    buf = SequenceBuffer(obs_dim=2, act_dim=1)
    obs = np.array([[0, 0], [1, 1], [2, 2]], np.float32)
    buf.add_episode(obs, np.array([[0.5], [-0.5]]), np.array([0.0, 1.0]), np.array([1.0, 0.0]), terminated=True)
    buf.add_episode(obs, np.array([[0.1], [0.2]]), np.zeros(2), np.zeros(2), terminated=False)
    assert len(buf) == 6 and buf.episodes == 2
    assert buf.first == [True, False, False, True, False, False]
    assert [a[0] for a in buf.prev_action[:3]] == pytest.approx([0.0, 0.5, -0.5])
    assert buf.reward[:3] == [0.0, 0.0, 1.0] and buf.cost[:3] == [0.0, 1.0, 0.0]
    assert buf.cont == [1.0, 1.0, 0.0, 1.0, 1.0, 1.0]  # only a terminated episode's last state ends it
    # eq. 22's normalisers: episode 1 earns 0.5 * 1 (its reward comes on the second step) and costs 1
    assert buf.discounted_maxima(gamma=0.5) == pytest.approx((0.5, 1.0))
    batch = buf.sample(4, 3, torch.Generator().manual_seed(0))
    assert batch["obs"].shape == (4, 3, 2) and batch["first"][:, 0].all()
    with pytest.raises(ValueError, match="NaN"):
        buf.add_episode(obs * np.nan, np.zeros((2, 1)), np.zeros(2), np.zeros(2), terminated=False)
    with pytest.raises(ValueError, match="T\\+1 states"):
        buf.add_episode(obs[:2], np.zeros((2, 1)), np.zeros(2), np.zeros(2), terminated=False)


def _tiny_config(**kw) -> FOSPConfig:
    wm = RSSMConfig(deter=32, latents=4, classes=4, hidden=32)
    return FOSPConfig(world_model=wm, hidden=32, batch_size=4, batch_length=8, horizon=3, imagine_starts=8, **kw)


def _random_buffer(episodes: int = 6, steps: int = 12, seed: int = 0) -> SequenceBuffer:
    rng = np.random.default_rng(seed)
    buf = SequenceBuffer(obs_dim=5, act_dim=2)
    for _ in range(episodes):
        buf.add_episode(
            rng.normal(size=(steps + 1, 5)),
            rng.uniform(-1, 1, size=(steps, 2)),
            (rng.random(steps) < 0.1).astype(float),
            (rng.random(steps) < 0.2).astype(float),
            terminated=bool(rng.random() < 0.5),
        )
    return buf


def test_a_train_step_moves_the_lagrange_multiplier_by_eq27_and_online_starts_a_new_actor():
    agent = FOSPAgent(5, 2, _tiny_config(), seed=0)
    before = agent.lambda_p
    log = agent.train_step(_random_buffer())
    assert agent.lambda_p == pytest.approx(max(0.0, before + 0.5 * agent.mu / (1 + 5e-9) * log["v_cost"]), rel=1e-6)
    old = [p.clone() for p in agent.actor.parameters()]
    agent.start_online()
    assert agent.offline_actor is not None
    assert all(torch.equal(a, b) for a, b in zip(old, agent.offline_actor.parameters(), strict=True))
    assert not all(p.requires_grad for p in agent.offline_actor.parameters())
    agent.train_step(_random_buffer())  # the frozen actor is not trained
    assert all(torch.equal(a, b) for a, b in zip(old, agent.offline_actor.parameters(), strict=True))


def test_without_expansion_online_fine_tunes_the_offline_actor_itself():
    agent = FOSPAgent(5, 2, _tiny_config(expansion=False), seed=0)
    agent.start_online()
    assert agent.offline_actor is None


def test_the_policy_takes_the_action_whose_normalised_q_is_higher(monkeypatch):
    agent = FOSPAgent(5, 2, _tiny_config(), seed=0)
    agent.start_online()
    pol = FOSPPolicy(agent, horizon_steps=10, deterministic=True)
    # the offline actor's candidate (row 0) has the higher Q~: eq. 21's likelier choice is the offline one
    monkeypatch.setattr(agent.critics, "qs", lambda f, a: (torch.tensor([5.0, 0.0]), torch.tensor([0.0, 0.0])))
    for _ in range(3):
        pol(np.zeros(5))
    assert pol.picked_offline == 3
    # ...and with the new actor's cost far higher, still the offline one; cheaper and better: the new one
    monkeypatch.setattr(agent.critics, "qs", lambda f, a: (torch.tensor([0.0, 5.0]), torch.tensor([0.0, 0.0])))
    pol.reset()
    pol(np.zeros(5))
    assert pol.picked_offline == 0
    with pytest.raises(ValueError, match="NaN"):
        pol(np.full(5, np.nan))


def test_a_checkpoint_restores_the_same_actions(tmp_path):
    agent = FOSPAgent(5, 2, _tiny_config(), seed=0)
    agent.train_step(_random_buffer())
    agent.start_online()
    agent.save(tmp_path / "fosp.pt", task="x")
    back, extra = FOSPAgent.load(tmp_path / "fosp.pt")
    assert extra == {"task": "x"}
    obs = np.random.default_rng(1).normal(size=(4, 5))
    a = [FOSPPolicy(agent, 10, True)(o) for o in obs]
    b = [FOSPPolicy(back, 10, True)(o) for o in obs]
    np.testing.assert_allclose(a, b, atol=1e-6)
    with pytest.raises(FileNotFoundError, match="pretrain --method fosp"):
        FOSPAgent.load(tmp_path / "missing.pt")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable FOSP checkpoint"):
        FOSPAgent.load(tmp_path / "bad.pt")


def test_cli_demos_pretrain_and_finetune_fosp_on_safe_reach(tmp_path, capsys):
    import json

    from farl_bringup.cli import main

    demos, run = tmp_path / "demos", tmp_path / "run"
    assert main(["demos", "--task", "safe_reach", "--kind", "all", "--episodes", "10", "--out", str(demos)]) == 0
    assert "reached_safe 6, neither 2, touched_reached 2, touched_missed 1, recovery 2" in capsys.readouterr().out
    assert main(["inspect", str(demos)]) == 0  # the four kinds come back from each bag's cost and reward
    assert (
        "SafeReach demonstrations as FOSP's four kinds: reached_safe 6, neither 2, touched_reached 2, "
        "touched_missed 1 (the paper's mix: 120/30/40/10)" in capsys.readouterr().out
    )
    assert main(["pretrain", "--method", "fosp", "--task", "safe_reach", "--demos", str(demos), "--out", str(run),
                 "--scale", "0.005"]) == 0  # fmt: skip
    assert "offline policy: J_r" in capsys.readouterr().out
    assert main(["finetune", "--method", "fosp", "--run", str(run), "--steps", "100"]) == 0
    out = capsys.readouterr().out
    assert "cost regret rho_c" in out
    doc = json.loads((run / "finetune_fosp_s0" / "online.json").read_text())
    assert doc["steps"] >= 100 and len(doc["episodes"]) >= 2
    regret = sum(e["cost"] for e in doc["episodes"]) / doc["steps"]
    assert doc["cost_regret"] == pytest.approx(regret)
    assert main(["finetune", "--method", "fosp", "--run", str(tmp_path), "--steps", "10"]) == 2
    assert "not a finished FOSP run" in capsys.readouterr().err


def test_the_claims_check_says_plainly_whether_each_claim_held():
    """bench/fosp_claims.py on hand-made runs: expansion held when the first 10 online episodes return
    what the offline policy did; safety held when the cost per episode falls to near zero."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parent.parent / "bench" / "fosp_claims.py"
    spec = importlib.util.spec_from_file_location("fosp_claims", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def run(method, before, returns, costs):
        curve = [[80 * (k + 1), r, int(c > 0)] for k, (r, c) in enumerate(zip(returns, costs, strict=True))]
        return {"method": method, "before": {"return": before}, "curve": curve, "online_cost_per_episode": costs}

    held = run("fosp", 0.5, [0.5] * 20, [2.0] * 10 + [0.0] * 10)
    dropped = run("fosp_no_expansion", 0.5, [0.0] * 20, [2.0] * 20)
    text, figures = module.claims({"safe_reach": {"methods": {"a": held, "b": dropped}}}, "safe_reach")
    assert (
        "**Expansion** (no initial drop): held." in text and "**Safety** (online cost falls toward zero): held." in text
    )
    assert figures["fosp_no_expansion"]["first_return"] == 0.0
    worse = run("fosp", 0.5, [0.0] * 20, [1.0] * 20)
    text, _ = module.claims({"safe_reach": {"methods": {"a": worse}}}, "safe_reach")
    assert "(no initial drop): did not hold" in text and "(online cost falls toward zero): did not hold" in text

    # Judged against the offline policy alone on the same layouts, acting as online episodes act: a gap to
    # the (deterministic, other-layout) evaluation that is there before any learning is no drop.
    def alone(returns):
        return {"stochastic_return": returns, "deterministic_return": returns}

    same = {"seeds": {"0": alone([0.0, 1.0] * 5), "1": alone([1.0, 0.0] * 5)}}
    runs = {
        "a": {**run("fosp", 0.9, [0.0, 1.0] * 10, [0.0] * 20), "seed": 0},
        "b": {**run("fosp", 0.9, [1.0, 0.0] * 10, [0.0] * 20), "seed": 1},
    }
    text, figures = module.claims({"safe_reach": {"methods": runs}}, "safe_reach", same)
    assert "(no initial drop): held." in text and figures["paired"]["fosp"][:3] == (0.5, 0.5, 0.0)
    assert "Of the 0.40 between those episodes and the offline evaluation's 0.90, 0.40 is there before" in text
    fell = {"seeds": {"0": alone([1.0] * 10), "1": alone([1.0] * 10)}}
    text, _ = module.claims({"safe_reach": {"methods": runs}}, "safe_reach", fell)
    assert "(no initial drop): did not hold" in text
    mixed = {"seeds": {"0": alone([0.0, 1.0] * 5), "1": alone([1.0, 1.0, 1.0, 0.0, 1.0] * 2)}}
    text, _ = module.claims({"safe_reach": {"methods": runs}}, "safe_reach", mixed)
    assert "(no initial drop): not settled by these runs" in text


def test_the_world_model_reads_64x64_images_beside_the_state_and_refuses_to_run_without_them():
    from farl_learning.rssm import RSSM

    wm = RSSM(5, 2, RSSMConfig(deter=16, latents=2, classes=3, hidden=16, image_size=64))
    batch = {
        "obs": torch.zeros(2, 4, 5),
        "image": torch.randint(0, 255, (2, 4, 3, 1, 1), dtype=torch.uint8).expand(2, 4, 3, 64, 64),  # flat colours
        "prev_action": torch.zeros(2, 4, 2),
        "first": torch.tensor([[True, False, False, False]] * 2),
        "reward": torch.zeros(2, 4),
        "cost": torch.zeros(2, 4),
        "cont": torch.ones(2, 4),
    }
    loss, _, post = wm.loss(batch)
    loss.backward()
    assert post["h"].shape == (2, 4, 16) and torch.isfinite(loss)
    assert wm.image_encoder is not None and wm.image_encoder.out.weight.grad is not None
    assert wm.image_decoder is not None and wm.image_decoder.inp.weight.grad.abs().sum() > 0
    # the decoder learns the image: eq. 1's reconstruction term falls on a fixed batch
    opt = torch.optim.Adam(wm.parameters(), lr=3e-3)
    first = wm.loss(batch)[1]["recon"]
    for _ in range(30):
        opt.zero_grad()
        wm.loss(batch)[0].backward()
        opt.step()
    assert wm.loss(batch)[1]["recon"] < 0.7 * first
    with pytest.raises(ValueError, match="reads images"):
        wm.loss({k: v for k, v in batch.items() if k != "image"})


def test_a_replay_with_images_holds_one_per_state_and_refuses_a_mismatch():
    from farl_learning.fosp_data import SequenceBuffer

    buf = SequenceBuffer(3, 2, image_size=16)
    obs, act = np.zeros((5, 3)), np.zeros((4, 2))
    images = np.arange(5, dtype=np.uint8)[:, None, None, None] * np.ones((5, 16, 16, 3), np.uint8)
    buf.add_episode(obs, act, np.zeros(4), np.zeros(4), True, images)
    batch = buf.sample(2, 3, torch.Generator().manual_seed(0))
    assert batch["image"].shape == (2, 3, 3, 16, 16) and batch["image"].dtype == torch.uint8
    # each window's images are its states' own, channels first for the CNN
    assert all(batch["image"][b, t, 0, 0, 0] == batch["image"][b, 0, 0, 0, 0] + t for b in range(2) for t in range(3))
    with pytest.raises(ValueError, match="T\\+1 camera images of 16x16x3"):
        buf.add_episode(obs, act, np.zeros(4), np.zeros(4), True, images[:4])
    with pytest.raises(ValueError, match="T\\+1 camera images"):
        buf.add_episode(obs, act, np.zeros(4), np.zeros(4), True)
    with pytest.raises(ValueError, match="states only"):
        SequenceBuffer(3, 2).add_episode(obs, act, np.zeros(4), np.zeros(4), True, images)


def test_fosp_from_images_demos_pretrain_and_finetune_on_safe_reach(tmp_path, monkeypatch):
    """FOSP's real-robot input in sim: the demonstrations carry the work-area camera's image with each state,
    the world model reads and reconstructs them, and the policy acts on the image the env renders."""
    from farl_bringup import fosp_pipeline
    from farl_learning.fosp import FOSPPolicy, refuse_image_agent
    from farl_sim.safe_reach_demos import generate_safe_reach_demos

    generate_safe_reach_demos(
        tmp_path / "demos", {"reached_safe": 1, "touched_missed": 1}, progress=False, image_size=16
    )
    monkeypatch.setattr(fosp_pipeline, "EVAL_EPISODES", 1)
    wm = RSSMConfig(deter=16, latents=2, classes=3, hidden=16, image_size=16)
    cfg = FOSPConfig(world_model=wm, hidden=16, batch_size=2, batch_length=4, horizon=2, imagine_starts=4)
    cfg.offline_steps, cfg.train_per_episode = 2, 1
    doc = fosp_pipeline.pretrain_fosp("safe_reach", tmp_path / "demos", tmp_path / "run", cfg, progress=False)
    assert doc["config"]["world_model"]["image_size"] == 16 and "recon" in doc["log"][-1]
    online = fosp_pipeline.finetune_fosp(tmp_path / "run", 20, seed=0, progress=False, eval_episodes=1)
    assert online["steps"] >= 20
    agent, _ = FOSPAgent.load(tmp_path / "run" / "fosp.pt")
    policy = FOSPPolicy(agent, 80)
    with pytest.raises(ValueError, match="reads 16x16x3 uint8 camera images; got none"):
        policy(np.zeros(39))
    from farl_common.runtime.node import NodeError

    with pytest.raises(NodeError, match="reads 16x16 camera images, and the ROS 2 graph"):
        refuse_image_agent(agent, tmp_path / "run" / "fosp.pt")
