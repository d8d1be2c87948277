"""The live view: what the arm does and what the shield sees and decides, in rerun (rerun-sdk).

`farl sim --view`, `farl record --view` and `farl replay --view` log, on the timeline `step` of each
episode:

- `scene/envelope`: the hard envelope's box; `scene/hazard`: the wall (Fragile Push Wall) or the
  vase (Disturbed and Obstructed Push); `scene/hand`, `scene/hand_trail`, `scene/object` and
  `scene/goal` from the state, in the world frame (metres);
- `scene/imagined`: at each decision, the hand's path through the H states the world model imagines
  (eq. 10's rollout), each vertex coloured by the risk summed up to it, green to red at eps_safe
  (the shield's `/farl/shield/imagined_path` MarkerArray);
- `shield/C_H` and `shield/eps_safe`, as log10 of each (rerun's plots have a linear axis): C_H
  against eps_safe on a log scale;
- `events`: episode start and end, each shield swap, each step a person took over;
- `camera/image`: perception's debug image (the frame with its detections drawn), where perception runs;
- `policy/version`: the policy version that acts.

Each episode is one recording, saved as `<bag>.rrd` beside its bag (`rerun <bag>.rrd` opens it), and,
with a viewer, streamed to it as it happens: `desktop` spawns the rerun viewer, `web` serves the web
viewer on localhost and prints its address.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from farl_common import messages as M
from farl_common import typestore as T
from farl_common.config import RobotConfig, same_as
from farl_common.obs_layout import HAND, OBJECT, OBSTACLE, field_slice
from farl_common.runtime.node import Input, Node
from farl_common.shared_inputs import EPISODE_EVENT_INPUT, EPISODE_RECORDED_INPUT, STATE_INPUT

ViewerKind = Literal["desktop", "web", "none"]
GOAL = field_slice("goal_pos_m")
_BAG_EPISODE = re.compile(r"_ep(\d+)(-\d+)?$")
RISK_COLOUR, EPS_COLOUR = (220, 40, 40), (40, 40, 40)
"""C_H's line and eps_safe's in the shield plot."""
WALL_HEIGHT_M = 0.12
"""Drawn height of Fragile Push Wall's wall (its footprint is farl_sim.hazards')."""


def _rr():
    try:
        import rerun as rr
    except ImportError:
        raise RuntimeError("the live view needs rerun: pip install 'farl[view]'") from None
    return rr


def blueprint() -> Any:
    """The view's layout: the scene in 3D beside C_H against eps_safe, the events, the camera and the
    policy version."""
    import rerun.blueprint as rrb

    return rrb.Blueprint(
        rrb.Horizontal(
            rrb.Spatial3DView(
                origin="scene",
                name="scene: hand, object, hazard, envelope, imagined path",
                # from in front of the table and above it, onto the work area in the middle of the envelope
                eye_controls=rrb.EyeControls3D(position=(0.05, 0.25, 0.45), look_target=(0.0, 0.72, 0.05)),
            ),
            rrb.Vertical(
                rrb.TimeSeriesView(origin="shield", name="C_H against eps_safe (log10)"),
                rrb.TextLogView(origin="events", name="events"),
                rrb.Horizontal(
                    rrb.Spatial2DView(origin="camera", name="camera"),
                    rrb.TimeSeriesView(origin="policy", name="policy version"),
                ),
                row_shares=[3, 2, 2],
            ),
            column_shares=[3, 2],
        ),
        collapse_panels=True,
    )


class Viewer:
    """The run's live recording, streamed to a spawned desktop viewer or to a web viewer on localhost; all
    episodes in one recording, its `step` running on from one episode to the next (`episode_step` restarts)."""

    def __init__(self, kind: ViewerKind = "none", web_port: int = 9090, grpc_port: int = 9876) -> None:
        import os
        import urllib.parse
        import uuid

        self.live: Any = None
        self.offset = 0
        """Steps of the episodes already shown."""
        if kind == "none":
            return
        rr = _rr()
        if kind == "desktop" and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            print("live view: no display (DISPLAY is not set): serving the web viewer instead", flush=True)
            kind = "web"
        self.live = rr.RecordingStream("farl", recording_id=f"live-{uuid.uuid4().hex[:8]}")
        if kind == "desktop":
            rr.spawn(port=grpc_port, connect=False)
            self.live.connect_grpc(f"rerun+http://127.0.0.1:{grpc_port}/proxy")
        else:
            url = self.live.serve_grpc(grpc_port=grpc_port)
            rr.serve_web_viewer(web_port=web_port, open_browser=False, connect_to=url)
            print(f"live view: http://127.0.0.1:{web_port}/?url={urllib.parse.quote(url, safe='')}", flush=True)
        self.live.send_recording_name("farl live")
        self.live.send_blueprint(blueprint())


class _Streams:
    """An episode's own recording (its file) and the run's live one, logged to alike."""

    def __init__(self, own: Any, viewer: Viewer | None) -> None:
        self.own, self.viewer = own, viewer
        self.recs = [own] + ([viewer.live] if viewer is not None and viewer.live is not None else [])

    def set_step(self, step: int) -> None:
        self.own.set_time("step", sequence=int(step))
        if len(self.recs) > 1:
            self.recs[1].set_time("step", sequence=self.viewer.offset + int(step))
            self.recs[1].set_time("episode_step", sequence=int(step))

    def log(self, path: str, *what: Any, static: bool = False) -> None:
        for rec in self.recs:
            rec.log(path, *what, static=static)


class EpisodeView:
    """One episode's recording (its file, and the viewer's live one if any); methods log what the graph or a
    bag holds."""

    def __init__(
        self,
        task: str,
        episode: int,
        path: Path,
        viewer: Viewer | None = None,
        envelope: tuple[list[float], list[float]] | None = None,
        hazard: str = "",
        kind: str = "online",
    ) -> None:
        rr = _rr()
        self.rr, self.path, self.hazard, self.viewer = rr, Path(path), hazard, viewer
        self.kind = kind  # a person acting in a demonstration is not a takeover
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.rec = rr.RecordingStream("farl", recording_id=f"{task}-ep{episode}-{self.path.stem}")
        self.rec.save(str(self.path))
        self.rec.send_recording_name(f"{task} episode {episode}")
        self.rec.send_blueprint(blueprint())
        self.out = _Streams(self.rec, viewer)
        self.trail: list[np.ndarray] = []
        self.swaps = 0
        self.out.log("scene", rr.ViewCoordinates.RIGHT_HAND_Z_UP, static=True)
        self.out.log("shield/C_H", rr.SeriesLines(colors=[RISK_COLOUR], names=["log10 C_H"], widths=[2.0]), static=True)
        self.out.log(
            "shield/eps_safe", rr.SeriesLines(colors=[EPS_COLOUR], names=["log10 eps_safe"], widths=[1.5]), static=True
        )
        if hazard == "wall":  # fixed in the scene: drawn once
            from farl_sim.hazards import WALL_CENTRE_XY, WALL_HALF_XY

            self.out.log(
                "scene/hazard",
                rr.Boxes3D(
                    centers=[[*WALL_CENTRE_XY, WALL_HEIGHT_M / 2]],
                    half_sizes=[[*WALL_HALF_XY, WALL_HEIGHT_M / 2]],
                    colors=[(200, 60, 200)],
                    labels=["wall"],
                ),
                static=True,
            )
        if envelope is not None:
            lo, hi = (np.asarray(v, dtype=np.float64) for v in envelope)
            self.out.log(
                "scene/envelope",
                rr.Boxes3D(mins=[lo], sizes=[hi - lo], colors=[(120, 120, 120)], labels=["envelope"]),
                static=True,
            )

    def _at(self, step: int) -> None:
        self.out.set_step(step)

    def state(self, step: int, obs: np.ndarray) -> None:
        rr = self.rr
        self._at(step)
        hand = obs[HAND]
        self.trail.append(hand.copy())
        self.out.log("scene/hand", rr.Points3D([hand], radii=0.012, colors=[(60, 120, 230)], labels=["hand"]))
        self.out.log("scene/hand_trail", rr.LineStrips3D([np.asarray(self.trail)], colors=[(60, 120, 230)]))
        self.out.log("scene/object", rr.Points3D([obs[OBJECT]], radii=0.02, colors=[(230, 200, 40)]))
        if self.hazard in ("vase", "obstacle"):
            self.out.log("scene/hazard", rr.Points3D([obs[OBSTACLE]], radii=0.03, colors=[(200, 60, 200)]))
        self.out.log("scene/goal", rr.Points3D([obs[GOAL]], radii=0.015, colors=[(40, 200, 200)]))

    def decision(self, step: int, risk: float, eps_safe: float, swapped: bool) -> None:
        self._at(step)
        if np.isfinite(risk):
            self.out.log("shield/C_H", self.rr.Scalars(np.log10(max(risk, 1e-12))))
        if eps_safe > 0:
            self.out.log("shield/eps_safe", self.rr.Scalars(np.log10(eps_safe)))
        if swapped:
            self.swaps += 1
            what = f"C_H {risk:.3g} > eps_safe {eps_safe:.3g}" if np.isfinite(risk) else "no risk answer"
            self.out.log("events", self.rr.TextLog(f"step {step}: shield swap ({what})", level="WARN"))

    def imagined(self, step: int, points: np.ndarray, colours: np.ndarray) -> None:
        """The hand's imagined path at one decision; `colours` RGBA in 0..1 per vertex."""
        self._at(step)
        rgba = (np.clip(colours, 0, 1) * 255).astype(np.uint8)
        self.out.log("scene/imagined", self.rr.LineStrips3D([points], colors=[rgba[-1]], radii=0.003))
        self.out.log("scene/imagined/states", self.rr.Points3D(points, radii=0.009, colors=rgba))

    def action(self, step: int, source: str, version: int) -> None:
        self._at(step)
        self.out.log("policy/version", self.rr.Scalars(float(version)))
        if source == "teleop" and self.kind == "online":
            self.out.log("events", self.rr.TextLog(f"step {step}: a person acts (takeover)", level="WARN"))

    def image(self, step: int, rgb: np.ndarray) -> None:
        self._at(step)
        self.out.log("camera/image", self.rr.Image(rgb))

    def event(self, step: int, text: str) -> None:
        self._at(step)
        self.out.log("events", self.rr.TextLog(text, level="INFO"))

    def close(self) -> None:
        self.rec.flush()
        self.rec.disconnect()
        if self.viewer is not None:
            self.viewer.offset += len(self.trail)


@dataclass
class LiveViewParams:
    task: str = field(default="fragile_push_wall", metadata={"doc": "task name"})
    out_dir: str = field(
        default="runs/fragile_push_wall/bags", metadata={"doc": "bag folder: each <bag>.rrd goes beside its bag"}
    )
    viewer: ViewerKind = field(default="none", metadata={"doc": "desktop | web | none (files only)"})
    workspace_min_m: list[float] = same_as(RobotConfig, "workspace_min_m")  # noqa: RUF009 - a field()
    workspace_max_m: list[float] = same_as(RobotConfig, "workspace_max_m")  # noqa: RUF009 - a field()


class LiveViewNode(Node):
    """The live view as a node of the graph: it listens to the topics an episode bag holds, the shield's
    imagined path and perception's debug image, and logs each episode as `EpisodeView` does."""

    name = "live_view"
    Params = LiveViewParams
    inputs = (
        STATE_INPUT,
        EPISODE_EVENT_INPUT,
        EPISODE_RECORDED_INPUT,
        Input("shield_decision", T.DECISION, "on_decision"),
        Input("action_executed", T.ACTION, "on_action"),
        Input("shield_markers", "visualization_msgs/msg/MarkerArray", "on_markers"),
        Input("debug_image", T.IMAGE, "on_image", qos="sensor"),
    )

    def on_start(self) -> None:
        from farl_sim.tasks import TASKS

        p = self.params
        self.viewer = Viewer(p.viewer) if p.viewer != "none" else None
        self.hazard = TASKS[p.task].hazard if p.task in TASKS else ""
        self.views: dict[int, EpisodeView] = {}
        self.finished: dict[int, Path] = {}
        """Episodes over, by number: their recording, waiting for the recorder to name their bag."""
        self.saved: list[Path] = []

    def _view(self, episode: int) -> EpisodeView | None:
        return self.views.get(int(episode))

    def on_episode_event(self, msg: Any) -> None:
        ep = int(msg.episode)
        if M.is_start(msg, self.msgs):
            if ep in self.views or ep in self.finished:
                return  # a late joiner's copy of an event already seen (transient local)
            tmp = Path(self.params.out_dir) / f".live_view_ep{ep:05d}.rrd"
            task = self.params.task
            self.views[ep] = EpisodeView(task, ep, tmp, self.viewer, envelope(self.params), self.hazard, str(msg.kind))
            self.views[ep].event(0, f"{task} episode {ep} starts ({msg.kind}, seed {msg.seed})")
            return
        view = self.views.pop(ep, None)
        if view is None:
            return
        view.event(
            int(msg.steps), f"episode {ep} ends: {msg.outcome}, return {msg.episode_return:.1f}, {view.swaps} swaps"
        )
        view.close()
        self.finished[ep] = view.path

    def on_episode_recorded(self, msg: Any) -> None:
        bag = Path(str(msg.data))
        if not _BAG_EPISODE.search(bag.name) or ep_number(bag) not in self.finished:
            return
        dst = bag.with_name(f"{bag.name}.rrd")
        self.finished.pop(ep_number(bag)).replace(dst)
        self.saved.append(dst)

    def on_state(self, msg: Any) -> None:
        if view := self._view(msg.episode):
            view.state(int(msg.step), M.state_values(msg))

    def on_decision(self, msg: Any) -> None:
        if view := self._view(msg.episode):
            view.decision(int(msg.step), float(msg.risk), float(msg.eps_safe), bool(msg.swapped))

    def on_action(self, msg: Any) -> None:
        if view := self._view(msg.episode):
            view.action(int(msg.step), M.action_source(msg), int(msg.policy_version))

    def on_markers(self, msg: Any) -> None:
        states = next((m for m in msg.markers if m.ns == "imagined_states"), None)
        if states is None or not self.views:
            return
        view = self.views[max(self.views)]  # the markers carry a time, not an episode: the one under way
        points = np.array([[p.x, p.y, p.z] for p in states.points])
        colours = np.array([[c.r, c.g, c.b, c.a] for c in states.colors])
        view.imagined(len(view.trail) - 1, points, colours)

    def on_image(self, msg: Any) -> None:
        if not self.views:
            return
        view = self.views[max(self.views)]
        rgb = np.asarray(msg.data, dtype=np.uint8).reshape(int(msg.height), int(msg.width), -1)
        view.image(len(view.trail) - 1, rgb)

    def on_shutdown(self) -> None:
        for view in self.views.values():
            view.close()
        for path in [*(v.path for v in self.views.values()), *self.finished.values()]:
            path.unlink(missing_ok=True)  # episodes whose bags were not kept: no recording either
        self.views, self.finished = {}, {}


def view_episode(
    ep: Any,
    path: Path,
    critic: Any = None,
    eps_safe: float = float("nan"),
    viewer: Viewer | None = None,
    envelope: tuple[list[float], list[float]] | None = None,
) -> Path:
    """A recorded episode (`farl_common.bags.Episode`) as a recording at `path`: what the bag holds (states,
    the stored shield decisions, who acted, events) and, with a `critic` that imagines (the world model's),
    its look-ahead at each step, as `farl replay --view` shows it."""
    import torch

    from farl_safety_shield.markers import risk_colours
    from farl_sim.tasks import TASKS

    hazard = TASKS[ep.task].hazard if ep.task in TASKS else ""
    view = EpisodeView(ep.task, ep_number(ep.path), path, viewer, envelope, hazard, ep.kind)
    view.event(0, f"{ep.task} episode {ep_number(ep.path)} starts ({ep.kind}, seed {ep.seed})")
    has_decisions = len(ep.risk) == len(ep) and bool(np.isfinite(ep.risk).any())
    sources = [M.ACTION_SOURCES[s] if s < len(M.ACTION_SOURCES) else "" for s in ep.source] if len(ep.source) else []
    for t in range(len(ep)):
        view.state(t, ep.obs[t])
        if has_decisions:
            view.decision(t, float(ep.risk[t]), eps_safe, bool(ep.swapped[t]))
        if sources:
            view.action(t, sources[t], ep.policy_version)
        if critic is not None and hasattr(critic, "imagine"):
            obs = torch.as_tensor(ep.obs[t][None], dtype=torch.float32)
            act = torch.as_tensor(ep.proposed_action[t][None], dtype=torch.float32)
            states, terms = critic.imagine(obs, act)
            view.imagined(t, states[0, :, HAND].numpy(), risk_colours(terms[0].numpy(), eps_safe))
    view.state(len(ep), ep.next_obs[-1])
    view.event(
        len(ep), f"episode {ep_number(ep.path)} ends: {ep.outcome}, return {ep.episode_return:.1f}, {view.swaps} swaps"
    )
    view.close()
    return view.path


def ep_number(bag: Path) -> int:
    """The episode number in a farl bag's name (`..._ep00003`, `..._ep00003-2`); 0 for other names."""
    found = _BAG_EPISODE.search(Path(bag).name)
    return int(found.group(1)) if found else 0


def envelope(robot: Any) -> tuple[list[float], list[float]]:
    """The hard envelope's corners (lower, upper) of a `robot:` config section or params that carry them."""
    return list(robot.workspace_min_m), list(robot.workspace_max_m)


def live_view_node(cfg: Any, viewer: str) -> LiveViewNode:
    """The live view node for a task config's graph (`farl sim --view`, `farl record --view`)."""
    from farl_bringup.graph_spec import bag_dir

    lo, hi = envelope(cfg.robot)
    params = LiveViewParams(task=cfg.task, out_dir=bag_dir(cfg), viewer=viewer, workspace_min_m=lo, workspace_max_m=hi)  # type: ignore[arg-type]
    return LiveViewNode(params)
