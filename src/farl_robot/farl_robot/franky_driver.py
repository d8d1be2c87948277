"""The real arm: a Franka Panda (or FR3) through franky (`franky-control`, libfranka underneath).

Base-frame displacements become absolute base-frame Cartesian targets (franky's Relative
reference is the end-effector frame, where z points down out of the gripper), from the measured
hand position, with the orientation held at the home pose's. Each control tick starts an
asynchronous motion that takes over from the last, at `relative_dynamics_factor` of the
robot's limits; a step under `MIN_STEP_M` starts none. Every franky error (the motion planner's
included) is a `RobotError`; recovery is `recover_from_errors()` and a retreat to the home pose, at
most `max_recoveries` tries, then `RobotFault` and the arm stays stopped.

Scheduling: libfranka raises the thread that connects, or that runs a synchronous motion, to
SCHED_FIFO priority 99 whenever it may (as root, even with `RealtimeConfig.Ignore`) and leaves it
there, so the robot node's Python thread, and every thread it starts later, would run at realtime
priority for good and could starve the machine's other processes (perception, the shield). The
driver puts the calling thread's policy back after each such call; franky's own control thread for
asynchronous motions keeps libfranka's priority, as it should.

Gripper: franky's `move_async` waits for the gripper's running move before it starts a new one, so
an effort that flips while the hand still travels (max width / speed: 1.6 s at the default 0.05 m/s)
would stall the control tick, and with franky-sim in the same process it never returns (it waits
holding the GIL that franky-sim's thread needs to finish the move). The driver keeps each move's
future and, while it is not done, defers a new open/close to the first tick after it is.

Tested against franky-sim (libfranka's protocol on loopback, MuJoCo physics): tests/test_franky_driver.py.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from farl_robot.driver import HandState, RobotDriver, RobotError, RobotFault, RobotUnavailable

GRIPPER_CLOSE_EFFORT = 0.5
"""A gripper effort above this closes the gripper, below minus this opens it; between, it stays."""

MIN_STEP_M = 1e-4
"""A step shorter than this (the Panda's repeatability, 0.1 mm) starts no motion: the arm finishes
the last step or stays. A target this close to an arm that barely moves (the fingers' reaction is
enough) can make franky's planner fail ("Motion planner failed with error code -111", ruckig's
synchronization error): seen on 2 of 300 zero steps against franky-sim with the fingers moving."""


@contextmanager
def keep_thread_scheduling() -> Iterator[None]:
    """Run a libfranka call that may raise this thread to realtime priority, then put the thread's
    scheduling policy and priority back as they were."""
    try:
        policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
    except (AttributeError, OSError):  # no POSIX scheduling API here: nothing to keep
        yield
        return
    try:
        yield
    finally:
        try:
            os.sched_setscheduler(0, policy, param)
        except OSError:
            pass  # lowering one's own priority is always allowed; nothing else to do if it is not


@dataclass(frozen=True)
class FrankySettings:
    robot_ip: str
    home_joints_rad: Sequence[float]
    relative_dynamics_factor: float = 0.1
    collision_torque_nm: float = 20.0
    collision_force_n: float = 20.0
    use_gripper: bool = True
    gripper_speed_mps: float = 0.05
    max_recoveries: int = 3
    realtime_kernel: bool = True
    """Ask libfranka for realtime scheduling (a PREEMPT_RT kernel); off only for franky-sim and tests."""


def _franky() -> Any:
    try:
        import franky
    except ImportError as err:
        raise RobotUnavailable(f"franky is not installed ({err}): pip install -e '.[robot]'") from None
    return franky


def _errors(franky: Any) -> tuple[type[Exception], ...]:
    """Every error franky raises: not all of its exceptions derive from `franky.Exception` (its
    `GripperException` does not), and libfranky's errors without a Python binding, such as the
    motion planner's, arrive as `RuntimeError`."""
    own = (
        o
        for o in vars(franky).values()
        if isinstance(o, type) and issubclass(o, Exception) and o.__module__.startswith("franky")
    )
    return (*own, RuntimeError)


class FrankyDriver(RobotDriver):
    def __init__(
        self,
        settings: FrankySettings,
        robot_factory: Callable[[FrankySettings], Any] | None = None,
        gripper_factory: Callable[[FrankySettings], Any] | None = None,
    ) -> None:
        """`robot_factory`/`gripper_factory` build franky's `Robot`/`Gripper` (tests wrap them to inject faults)."""
        self.s = settings
        self._robot_factory = robot_factory or self._connect_robot
        self._gripper_factory = gripper_factory or (lambda s: _franky().Gripper(s.robot_ip))
        self.robot: Any = None
        self.gripper: Any = None
        self.quaternion: np.ndarray | None = None
        self.gripper_closed = False
        """What the driver last told the gripper (closed or open)."""
        self._gripper_wanted_closed = False
        self._gripper_move: Any = None
        """franky's future of the last asynchronous gripper move, None when none was started."""
        self.recoveries = 0

    @staticmethod
    def _connect_robot(s: FrankySettings) -> Any:
        franky = _franky()
        rt = franky.RealtimeConfig.Enforce if s.realtime_kernel else franky.RealtimeConfig.Ignore
        return franky.Robot(s.robot_ip, realtime_config=rt)

    # RobotDriver --------------------------------------------------------------------------------
    def connect(self) -> None:
        franky = _franky()
        if self.robot is not None:
            return  # libfranka serves one client: a second connection would wait for the first forever
        try:
            with keep_thread_scheduling():
                self.robot = self._robot_factory(self.s)
                self.robot.relative_dynamics_factor = self.s.relative_dynamics_factor
                self.robot.set_collision_behavior(self.s.collision_torque_nm, self.s.collision_force_n)
                if self.s.use_gripper:
                    self.gripper = self._gripper_factory(self.s)
        except _errors(franky) as err:
            self.robot = self.gripper = None
            raise RobotUnavailable(f"no robot at {self.s.robot_ip}: {' '.join(str(err).split())}") from None

    def home(self, seed: int) -> HandState:
        try:
            self._move_home()
        except RobotError as err:
            self.recover_after(f"during homing: {err}")
        if self.gripper is not None:
            self._gripper_wanted_closed = False
            self._gripper(open_=True, wait=True)  # every episode starts with the hand open
        pose = self.robot.current_cartesian_state.pose.end_effector_pose
        self.quaternion = np.asarray(pose.quaternion, dtype=np.float64)
        return self.read()

    def read(self) -> HandState:
        franky = _franky()
        try:
            pos = np.asarray(self.robot.current_cartesian_state.pose.end_effector_pose.translation, dtype=np.float64)
            opening = 1.0
            if self.gripper is not None:
                opening = float(np.clip(self.gripper.width / max(self.gripper.max_width, 1e-6), 0.0, 1.0))
        except _errors(franky) as err:
            raise RobotError(f"reading the robot state failed: {err}") from None
        return HandState(pos, opening)

    def hand_pose(self) -> np.ndarray:
        """4 x 4 end-effector pose in the base frame (camera calibration needs the orientation too)."""
        franky = _franky()
        try:
            T = np.asarray(self.robot.current_cartesian_state.pose.end_effector_pose.matrix, dtype=np.float64)
        except _errors(franky) as err:
            raise RobotError(f"reading the robot state failed: {err}") from None
        return T

    def execute(self, delta_m: np.ndarray, gripper: float) -> None:
        franky = _franky()
        assert self.quaternion is not None, "home() first"
        try:
            self.robot.poll_motion()  # an error of the last asynchronous motion surfaces here
            delta_m = np.asarray(delta_m, dtype=np.float64)
            if np.linalg.norm(delta_m) >= MIN_STEP_M:
                here = np.asarray(self.robot.current_cartesian_state.pose.end_effector_pose.translation)
                target = franky.Affine(here + delta_m, self.quaternion)
                self.robot.move(franky.CartesianMotion(target, franky.ReferenceType.Absolute), asynchronous=True)
        except _errors(franky) as err:
            raise RobotError(f"robot error during motion: {' '.join(str(err).split())}") from None
        if self.gripper is not None:
            if abs(gripper) > GRIPPER_CLOSE_EFFORT:
                self._gripper_wanted_closed = gripper > 0
            if self._gripper_wanted_closed != self.gripper_closed and self._gripper_idle():
                self._gripper(open_=not self._gripper_wanted_closed)

    def recover(self) -> None:
        self.recover_after("")

    def recover_after(self, what: str) -> None:
        """Clear errors and retreat home, up to `max_recoveries` times; `RobotFault` if it never works."""
        franky = _franky()
        last = what
        for _ in range(self.s.max_recoveries):
            self.recoveries += 1
            try:
                self.robot.recover_from_errors()
                self._move_home()
                return
            except (*_errors(franky), RobotError) as err:
                last = " ".join(str(err).split())
        self.stop()
        raise RobotFault(
            f"robot at {self.s.robot_ip} did not recover after {self.s.max_recoveries} tries ({last}); "
            "the arm is stopped: check it, clear the error in Desk if needed, and restart"
        )

    def stop(self) -> None:
        if self.robot is None:
            return
        try:
            self.robot.stop()
        except Exception:  # noqa: BLE001 - stopping must not fail a shutdown; nothing else can be done
            pass

    def close(self) -> None:
        self.stop()
        if self.gripper is not None:
            try:  # franky's gripper torn down under a running move was seen to crash the process on exit
                self._gripper_idle(timeout_s=self._gripper_travel_s() + 1.0)
            except RobotError:
                pass  # closing: the move's error has nobody left to tell
        self.gripper = None
        self.robot = None

    # helpers ------------------------------------------------------------------------------------
    def _move_home(self) -> None:
        franky = _franky()
        try:
            self.robot.join_motion()
        except _errors(franky):
            pass  # the motion that failed is being replaced by the retreat
        try:
            with keep_thread_scheduling():  # a synchronous motion runs libfranka's loop in this thread
                self.robot.move(franky.JointMotion(list(self.s.home_joints_rad)))
        except _errors(franky) as err:
            raise RobotError(" ".join(str(err).split())) from None

    def _gripper_travel_s(self) -> float:
        """Seconds a full open or close takes at the configured speed."""
        return float(self.gripper.max_width) / max(self.s.gripper_speed_mps, 1e-6)

    def _gripper_idle(self, timeout_s: float = 0.0) -> bool:
        """Whether the last asynchronous gripper move is over (waiting at most `timeout_s`); a move
        that raised surfaces here as a `RobotError`."""
        franky = _franky()
        if self._gripper_move is None:
            return True
        if not self._gripper_move.wait(timeout_s):
            return False
        move, self._gripper_move = self._gripper_move, None
        try:
            move.get()  # False (the hand stopped short, on an object) is no error; an exception is
        except _errors(franky) as err:
            raise RobotError(f"gripper error: {' '.join(str(err).split())}") from None
        return True

    def _gripper(self, open_: bool, wait: bool = False) -> None:
        franky = _franky()
        if wait:
            limit_s = 2.0 * self._gripper_travel_s() + 1.0
            if not self._gripper_idle(timeout_s=limit_s):
                raise RobotError(f"gripper error: its last move did not end within {limit_s:.1f} s")
        try:
            width = self.gripper.max_width if open_ else 0.0
            with keep_thread_scheduling():
                if wait:
                    self.gripper.move(width, self.s.gripper_speed_mps)
                else:  # within a tick: never block (execute() only calls this once the last move is over)
                    self._gripper_move = self.gripper.move_async(width, self.s.gripper_speed_mps)
            self.gripper_closed = not open_
        except _errors(franky) as err:
            raise RobotError(f"gripper error: {err}") from None
