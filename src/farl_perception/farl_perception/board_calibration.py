"""Camera-to-base extrinsics from a ChArUco (or ArUco grid) board on the hand, seen at known poses.

Eye-to-hand: the camera is fixed, the board is fixed to the hand (where exactly need not be known).
For each sample i the robot gives the hand pose A_i = T_base_hand and the camera sees the board,
B_i = T_camera_board (OpenCV's detector, then solvePnP). Both chains reach the board:

    A_i Y = X B_i,   X = T_base_camera (wanted),   Y = T_hand_board (a by-product)

A closed-form start (rotations from the null space of the stacked Kronecker equations, as in
Li, Wang and Wu 2010, "Simultaneous robot-world and hand-eye calibration using dual-quaternions
and Kronecker product"; translations by linear least squares) is refined by minimising the board
corners' reprojection error over all samples. OpenCV 5's Python bindings do not expose
calibrateRobotWorldHandEye, so the solve is here; the detection is OpenCV's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Literal

import numpy as np
import yaml

from farl_perception.calibration import CalibrationError, check_rigid
from farl_perception.frames import Intrinsics

MIN_SAMPLES = 4
"""Fewer poses leave the rotation poorly constrained; 10-15 well spread ones are better."""
MIN_CORNERS = 6
SAMPLES_FILE = "samples.yaml"
"""A folder of samples: this file (board, intrinsics, one entry per sample: image file and
T_base_hand) and the colour images beside it, as `farl perception capture-board` writes them."""


@dataclass(frozen=True)
class BoardSpec:
    """The printed board. Measure the printed square (and marker) size: printers scale."""

    kind: Literal["charuco", "aruco_grid"] = "charuco"
    squares_x: int = 5
    squares_y: int = 7
    square_m: float = 0.04
    """ChArUco: chessboard square side; ArUco grid: marker side plus the gap between markers."""
    marker_m: float = 0.03
    """Side of one ArUco marker."""
    dictionary: str = "DICT_5X5_100"

    def board(self):
        import cv2

        if not hasattr(cv2.aruco, self.dictionary):
            raise CalibrationError(f"board: unknown ArUco dictionary {self.dictionary!r} (e.g. DICT_5X5_100)")
        if not 0 < self.marker_m < self.square_m:
            raise CalibrationError(f"board: marker_m {self.marker_m} must be > 0 and < square_m {self.square_m}")
        d = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, self.dictionary))
        if self.kind == "charuco":
            return cv2.aruco.CharucoBoard((self.squares_x, self.squares_y), self.square_m, self.marker_m, d)
        if self.kind == "aruco_grid":
            return cv2.aruco.GridBoard(
                (self.squares_x, self.squares_y), self.marker_m, self.square_m - self.marker_m, d
            )
        raise CalibrationError(f"board: kind {self.kind!r}: choose charuco or aruco_grid")

    def size_m(self) -> tuple[float, float]:
        gap = 0.0 if self.kind == "charuco" else self.square_m - self.marker_m
        return self.squares_x * self.square_m - gap, self.squares_y * self.square_m - gap

    def image(self, px_per_m: float = 4000.0, margin_px: int = 40):
        """The board to print (grey levels), at `px_per_m` (4000: about 100 dpi)."""
        w, h = self.size_m()
        size = (round(w * px_per_m) + 2 * margin_px, round(h * px_per_m) + 2 * margin_px)
        return self.board().generateImage(size, marginSize=margin_px)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class BoardView:
    """What one image shows of the board."""

    T_camera_board: np.ndarray
    object_points: np.ndarray
    """N x 3, board frame (metres)."""
    image_points: np.ndarray
    """N x 2 pixels."""
    reprojection_px: float


def camera_matrix(k: Intrinsics) -> np.ndarray:
    return np.array([[k.fx, 0.0, k.cx], [0.0, k.fy, k.cy], [0.0, 0.0, 1.0]])


def _pose(rvec: np.ndarray, tvec: np.ndarray) -> np.ndarray:
    import cv2

    T = np.eye(4)
    T[:3, :3] = cv2.Rodrigues(np.asarray(rvec, dtype=np.float64).reshape(3))[0]
    T[:3, 3] = np.asarray(tvec, dtype=np.float64).reshape(3)
    return T


def find_board(rgb: np.ndarray, k: Intrinsics, spec: BoardSpec) -> BoardView | None:
    """The board's pose in the camera frame, or None when too few corners are seen."""
    import cv2

    board = spec.board()
    gray = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    if spec.kind == "charuco":
        corners, ids, _, _ = cv2.aruco.CharucoDetector(board).detectBoard(gray)
    else:
        corners, ids, _ = cv2.aruco.ArucoDetector(board.getDictionary()).detectMarkers(gray)
    if ids is None or len(ids) == 0:
        return None
    obj, img = board.matchImagePoints(corners, ids)
    if obj is None or len(obj) < MIN_CORNERS:
        return None
    obj, img = obj.reshape(-1, 3).astype(np.float64), img.reshape(-1, 2).astype(np.float64)
    K = camera_matrix(k)
    ok, rvec, tvec = cv2.solvePnP(obj, img, K, None, flags=cv2.SOLVEPNP_ITERATIVE)
    if not ok:
        return None
    proj, _ = cv2.projectPoints(obj, rvec, tvec, K, None)
    err = float(np.sqrt(np.mean(np.sum((proj.reshape(-1, 2) - img) ** 2, axis=1))))
    return BoardView(_pose(rvec, tvec), obj, img, err)


def _project_to_rotation(M: np.ndarray) -> np.ndarray:
    U, _, Vt = np.linalg.svd(M)
    R = U @ Vt
    if np.linalg.det(R) < 0:
        R = U @ np.diag([1.0, 1.0, -1.0]) @ Vt
    return R


def solve_ax_yb(A: list[np.ndarray], B: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """X, Y with A_i Y = X B_i for all i (closed form): X = T_base_camera, Y = T_hand_board."""
    rows = []
    eye = np.eye(3)
    for a, b in zip(A, B, strict=True):
        # vec(R_A R_Y) = (I kron R_A) vec(R_Y); vec(R_X R_B) = (R_B^T kron I) vec(R_X), column-major vec
        rows.append(np.hstack([np.kron(eye, a[:3, :3]), -np.kron(b[:3, :3].T, eye)]))
    _, _, Vt = np.linalg.svd(np.vstack(rows))
    v = Vt[-1]
    Ry, Rx = v[:9].reshape(3, 3, order="F"), v[9:].reshape(3, 3, order="F")
    scale = np.sign(np.linalg.det(Rx)) * abs(np.linalg.det(Rx)) ** (-1 / 3)
    Rx, Ry = _project_to_rotation(Rx * scale), _project_to_rotation(Ry * scale)
    # R_A t_Y - t_X = R_X t_B - t_A
    M = np.vstack([np.hstack([a[:3, :3], -eye]) for a in A])
    rhs = np.concatenate([Rx @ b[:3, 3] - a[:3, 3] for a, b in zip(A, B, strict=True)])
    t = np.linalg.lstsq(M, rhs, rcond=None)[0]
    X, Y = np.eye(4), np.eye(4)
    X[:3, :3], X[:3, 3] = Rx, t[3:]
    Y[:3, :3], Y[:3, 3] = Ry, t[:3]
    return X, Y


def _reprojection(X: np.ndarray, Y: np.ndarray, A: list[np.ndarray], views: list[BoardView], K: np.ndarray):
    Xinv = np.linalg.inv(X)
    out = []
    for a, v in zip(A, views, strict=True):
        T = Xinv @ a @ Y  # camera <- board, through the robot
        p = v.object_points @ T[:3, :3].T + T[:3, 3]
        uv = (p[:, :2] / p[:, 2:3]) * [K[0, 0], K[1, 1]] + [K[0, 2], K[1, 2]]
        out.append(uv - v.image_points)
    return np.concatenate(out)


def _refine(X: np.ndarray, Y: np.ndarray, A: list[np.ndarray], views: list[BoardView], K: np.ndarray):
    from scipy.optimize import least_squares
    from scipy.spatial.transform import Rotation

    def unpack(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        X, Y = np.eye(4), np.eye(4)
        X[:3, :3], X[:3, 3] = Rotation.from_rotvec(z[0:3]).as_matrix(), z[3:6]
        Y[:3, :3], Y[:3, 3] = Rotation.from_rotvec(z[6:9]).as_matrix(), z[9:12]
        return X, Y

    z0 = np.concatenate(
        [Rotation.from_matrix(X[:3, :3]).as_rotvec(), X[:3, 3], Rotation.from_matrix(Y[:3, :3]).as_rotvec(), Y[:3, 3]]
    )
    res = least_squares(lambda z: _reprojection(*unpack(z), A, views, K).reshape(-1), z0, loss="huber", f_scale=2.0)
    return unpack(res.x)


@dataclass
class BoardCalibration:
    T_base_camera: np.ndarray
    T_hand_board: np.ndarray
    reprojection_px: float
    """RMS over every corner of every sample, through the robot's chain (not each view's own PnP)."""
    residual_m: float
    """RMS distance between the board corners placed by the robot's chain and by each view's PnP."""
    samples: int


def calibrate(T_base_hand: list[np.ndarray], views: list[BoardView], k: Intrinsics) -> BoardCalibration:
    if len(views) < MIN_SAMPLES:
        raise CalibrationError(
            f"board calibration: {len(views)} samples with the board in view; need at least {MIN_SAMPLES} "
            "(10-15 poses spread over the workspace, tilted in different directions)"
        )
    A = [np.asarray(a, dtype=np.float64) for a in T_base_hand]
    K = camera_matrix(k)
    X, Y = solve_ax_yb(A, [v.T_camera_board for v in views])
    X, Y = _refine(X, Y, A, views, K)
    px = float(np.sqrt(np.mean(np.sum(_reprojection(X, Y, A, views, K) ** 2, axis=1))))
    Xinv, d = np.linalg.inv(X), []
    for a, v in zip(A, views, strict=True):
        chain, pnp = Xinv @ a @ Y, v.T_camera_board
        d.append(
            np.linalg.norm(
                (v.object_points @ chain[:3, :3].T + chain[:3, 3]) - (v.object_points @ pnp[:3, :3].T + pnp[:3, 3]),
                axis=1,
            )
        )
    return BoardCalibration(X, Y, px, float(np.sqrt(np.mean(np.concatenate(d) ** 2))), len(views))


@dataclass
class Sample:
    image: str
    """File name inside the samples folder (PNG, RGB saved as BGR by OpenCV)."""
    T_base_hand: np.ndarray


def write_samples(
    folder: str | Path, spec: BoardSpec, k: Intrinsics, samples: list[tuple[np.ndarray, np.ndarray]]
) -> Path:
    """`samples`: (RGB image, T_base_hand) pairs. Rewrites samples.yaml atomically after the images."""
    import cv2

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for i, (rgb, T) in enumerate(samples):
        name = f"sample_{i:03d}.png"
        cv2.imwrite(str(folder / name), np.ascontiguousarray(rgb)[..., ::-1])
        entries.append({"image": name, "T_base_hand": [[float(x) for x in row] for row in np.asarray(T)]})
    doc = {"board": spec.as_dict(), "intrinsics": asdict(k), "samples": entries}
    tmp = folder / (SAMPLES_FILE + ".tmp")
    tmp.write_text(yaml.safe_dump(doc, sort_keys=False))
    tmp.replace(folder / SAMPLES_FILE)
    return folder / SAMPLES_FILE


def read_samples(folder: str | Path) -> tuple[BoardSpec, Intrinsics, list[tuple[str, np.ndarray, np.ndarray]]]:
    """The board, the intrinsics and (name, RGB image, T_base_hand) per sample; one-line errors."""
    import cv2

    folder = Path(folder)
    path = folder / SAMPLES_FILE
    if not path.is_file():
        raise CalibrationError(f"{path}: not found (farl perception capture-board writes it)")
    try:
        doc = yaml.safe_load(path.read_text())
        spec = BoardSpec(**{f.name: doc["board"][f.name] for f in fields(BoardSpec) if f.name in doc["board"]})
        k = Intrinsics(**doc["intrinsics"])
        entries = list(doc["samples"])
    except (yaml.YAMLError, KeyError, TypeError, ValueError) as err:
        raise CalibrationError(
            f"{path}: needs board:, intrinsics: and samples: ({type(err).__name__}: {err})"
        ) from None
    out = []
    for e in entries:
        img = cv2.imread(str(folder / str(e.get("image", ""))))
        if img is None:
            raise CalibrationError(f"{path}: image {e.get('image')!r} is missing or not an image")
        try:
            T = np.asarray(e.get("T_base_hand"), dtype=np.float64)
        except (TypeError, ValueError):
            raise CalibrationError(f"{path}: {e['image']}: T_base_hand must be 4 rows of 4 numbers") from None
        out.append((str(e["image"]), img[..., ::-1].copy(), check_rigid(T, f"{path}: {e['image']} T_base_hand")))
    return spec, k, out


def calibrate_folder(folder: str | Path) -> tuple[BoardCalibration, list[str]]:
    """Calibration from a samples folder; also the names of the samples where the board was not found."""
    spec, k, samples = read_samples(folder)
    poses, views, missed = [], [], []
    for name, rgb, T in samples:
        v = find_board(rgb, k, spec)
        if v is None:
            missed.append(name)
        else:
            poses.append(T)
            views.append(v)
    return calibrate(poses, views, k), missed
