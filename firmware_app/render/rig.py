"""A 2D face rig on MediaPipe's 478-point mesh: controls → where each landmark should be.

Every control moves a group of landmarks in a face-normalised frame (x along the eyes, y down the
face, unit = face height), so the same control gives the same expression on a small or a large
face and on a tilted head. Head yaw/pitch/roll rotate the mesh in 3D (MediaPipe's z is depth in
the same pixel units) and project it back. Lip opening is not here: `render.mouth` sets it, from
the current lips to the commanded gap, because it also paints the mouth's inside; nor are blinks:
`render.eyes` slides the lids, which a smooth landmark warp cannot do without squashing the eye.

Controls use ARKit names (`eyeBlinkLeft`, `mouthPucker`, …; Left = the subject's left, which is
the image's right) plus `headYaw`, `headPitch`, `headRoll` in degrees (+yaw turns the face toward
the image's right, +pitch tilts the chin down, +roll tilts clockwise on screen).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from firmware_app.frames import Face

# eyes (image-left eye = the subject's right)
RIGHT_UPPER_LID = [246, 161, 160, 159, 158, 157, 173]
RIGHT_LOWER_LID = [7, 163, 144, 145, 153, 154, 155]
LEFT_UPPER_LID = [466, 388, 387, 386, 385, 384, 398]
LEFT_LOWER_LID = [249, 390, 373, 374, 380, 381, 382]
RIGHT_BROW = [70, 63, 105, 66, 107, 46, 53, 52, 65, 55]
LEFT_BROW = [300, 293, 334, 296, 336, 276, 283, 282, 295, 285]
INNER_BROWS = [107, 66, 55, 65, 336, 296, 285, 295]
IRISES = list(range(468, 478))  # left free: the warp interpolates them from the lids

# lips, ordered corner → corner
LIPS_OUTER = [61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 146, 91, 181, 84, 17, 314, 405, 321, 375]
LIPS_INNER = [78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 95, 88, 178, 87, 14, 317, 402, 318, 324]
LIPS = LIPS_OUTER + LIPS_INNER
UPPER_OUTER = [61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291]
UPPER_INNER = [78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308]
LOWER_INNER = [78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308]
LEFT_CORNERS, RIGHT_CORNERS = [291, 308, 409, 375], [61, 78, 185, 146]  # subject's left = image right
_OUTER = np.array(LIPS_OUTER)
_OUTER_IS_UPPER = np.isin(_OUTER, UPPER_OUTER)  # which of the outer lip points are the upper lip's

FOREHEAD, CHIN = 10, 152
FACE_OVAL = [10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152,
             148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109]  # fmt: skip
# Head motion spreads past the face outline onto hair, ears and neck and dies out by the last
# ring, so the head moves as one piece instead of tearing at the jaw line.
HALO_SCALES = (1.15, 1.35, 1.55, 1.75)  # × the outline's distance from the face centre
HALO_CARRY = (0.85, 0.55, 0.25, 0.0)  # share of the outline's motion each ring carries
EYE_OUTER_RIGHT, EYE_OUTER_LEFT = 33, 263

HEAD_CONTROLS = ("headYaw", "headPitch", "headRoll")
CONTROLS = (
    "eyeBlinkLeft", "eyeBlinkRight", "browInnerUp", "browDownLeft", "browDownRight",
    "mouthPucker", "mouthFunnel", "mouthStretchLeft", "mouthStretchRight", "mouthSmileLeft",
    "mouthSmileRight", "mouthPressLeft", "mouthPressRight", "mouthRollLower", "mouthRollUpper",
    "mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft", "mouthUpperUpRight", *HEAD_CONTROLS,
)  # fmt: skip

# how far each control moves its landmarks at weight 1, in face heights
BROW_RAISE = 0.035
BROW_LOWER = 0.02
PUCKER_NARROW = 0.38  # share of the mouth's half width the corners move in
FUNNEL_NARROW = 0.22
FUNNEL_FLARE = 0.012  # lips curl away from the seam
STRETCH = 0.035
SMILE_OUT, SMILE_UP = 0.025, 0.03
PRESS_THIN = 0.5  # share of the lip's thickness lost
ROLL_THIN = 0.6  # a lip rolled inward shows this much less of itself
LIP_RAISE = 0.012  # upper lip up / lower lip down at one side (the opening itself is render.mouth's)


@dataclass(frozen=True)
class FaceFrame:
    """Face-normalised coordinates: origin between the lips, x along the eyes, unit = face height."""

    origin: np.ndarray
    ex: np.ndarray
    ey: np.ndarray
    scale: float

    @classmethod
    def of(cls, face: Face) -> FaceFrame:
        p = face.landmarks[:, :2].astype(np.float64)
        ex = p[EYE_OUTER_LEFT] - p[EYE_OUTER_RIGHT]
        ex /= np.linalg.norm(ex) + 1e-9
        ey = np.array([-ex[1], ex[0]])
        scale = float(np.linalg.norm(p[CHIN] - p[FOREHEAD]))
        return cls((p[13] + p[14]) / 2, ex, ey, max(scale, 1.0))

    def to_face(self, points: np.ndarray) -> np.ndarray:
        rel = points - self.origin
        return np.stack([rel @ self.ex, rel @ self.ey], axis=-1) / self.scale

    def to_image(self, points: np.ndarray) -> np.ndarray:
        return self.origin + (points[..., :1] * self.ex + points[..., 1:2] * self.ey) * self.scale


@dataclass(frozen=True)
class RigPose:
    targets: np.ndarray  # 478 x 2 pixels: where each landmark goes
    free: np.ndarray  # 478 bools: landmarks the warp should not pin (the irises)
    halo_current: np.ndarray  # M x 2 points around the face, and where they go
    halo_targets: np.ndarray

    def pinned(self, face: Face) -> tuple[np.ndarray, np.ndarray]:
        """(current, target) of every point the warp holds: landmarks and halo."""
        keep = ~self.free
        return (
            np.concatenate([face.landmarks[keep, :2], self.halo_current]),
            np.concatenate([self.targets[keep], self.halo_targets]),
        )


def rig_targets(face: Face, controls: dict[str, float]) -> RigPose:
    """Where every landmark goes under `controls`; unnamed controls stay at 0."""
    frame = FaceFrame.of(face)
    points = frame.to_face(face.landmarks[:, :2].astype(np.float64))
    moved = points.copy()
    c = {name: _clamp(controls.get(name, 0.0), 90.0 if name in HEAD_CONTROLS else None) for name in CONTROLS}
    moved[RIGHT_BROW, 1] += BROW_LOWER * c["browDownRight"]
    moved[LEFT_BROW, 1] += BROW_LOWER * c["browDownLeft"]
    moved[INNER_BROWS, 1] -= BROW_RAISE * c["browInnerUp"]
    moved[RIGHT_BROW + LEFT_BROW, 1] -= 0.4 * BROW_RAISE * c["browInnerUp"]
    _mouth_shape(points, moved, c)
    moved = frame.to_image(moved)
    if any(c[name] for name in HEAD_CONTROLS):
        moved = _turn_head(face, moved, c["headYaw"], c["headPitch"], c["headRoll"])
    free = np.zeros(len(moved), bool)
    free[IRISES] = True
    return RigPose(moved, free, *_halo(face.landmarks[:, :2].astype(np.float64), moved))


def _clamp(value: float, degrees: float | None) -> float:
    """A control within its range: ± `degrees` for the head, else 0 to 1 (plain floats: this runs
    for every control on every frame, where np.clip's overhead adds up)."""
    low, high = (-degrees, degrees) if degrees is not None else (0.0, 1.0)
    return min(max(float(value), low), high)


def _halo(current: np.ndarray, moved: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    centre = current.mean(axis=0)
    outline, shift = current[FACE_OVAL], (moved - current)[FACE_OVAL]
    halo_current = np.concatenate([centre + (outline - centre) * k for k in HALO_SCALES])
    halo_shift = np.concatenate([shift * carry for carry in HALO_CARRY])
    return halo_current, halo_current + halo_shift


def _mouth_shape(points: np.ndarray, moved: np.ndarray, c: dict[str, float]) -> None:
    """Rounding, spreading and pressing move the lips and the skin around them (MediaPipe has
    landmarks on that skin too; leaving them put would pin the lips in place)."""
    x, y = points[:, 0], points[:, 1]
    half_width = max(float(points[LEFT_CORNERS[0], 0] - points[RIGHT_CORNERS[0], 0]) / 2, 1e-3)
    centre_x = float(points[[LEFT_CORNERS[0], RIGHT_CORNERS[0]], 0].mean())
    top, bottom = float(points[0, 1]), float(points[17, 1])  # outer lip midpoints
    across = (x - centre_x) / half_width
    beyond = np.maximum(np.maximum(top - y, y - bottom), 0.0) / 0.05  # face heights above/below the lips
    # a wide, gentle falloff: the cheek points around the mouth follow a little, so the warp
    # never has a moving point right beside a fixed one (that left ripples in the cheeks)
    weight = (1 - smoothstep(1.0, 2.2, np.abs(across))) * (1 - smoothstep(0.0, 1.6, beyond))
    # rounding: lips gather toward the middle, more at the corners than at the centre
    narrow = PUCKER_NARROW * c["mouthPucker"] + FUNNEL_NARROW * c["mouthFunnel"]
    moved[:, 0] -= narrow * (x - centre_x) * np.minimum(np.abs(across), 1.0) ** 0.5 * weight
    outer, upper_lip = _OUTER, _OUTER_IS_UPPER
    moved[outer, 1] += np.sign(y[outer]) * FUNNEL_FLARE * c["mouthFunnel"]
    # each outer point's own lip edge: the upper lip's over the upper inner edge, the lower's over
    # the lower one (an open mouth has both at one x, so one interpolated "seam" would be wrong)
    seam = np.where(upper_lip, _edge(x, y, UPPER_INNER, x[outer]), _edge(x, y, LOWER_INNER, x[outer]))
    thickness = y[outer] - seam  # < 0 on the upper lip
    for side, sign in (("Left", 1.0), ("Right", -1.0)):
        near = np.clip(sign * across, 0.0, 1.0) ** 2 * weight  # 1 at this corner, 0 at the middle
        moved[:, 0] += sign * near * (STRETCH * c[f"mouthStretch{side}"] + SMILE_OUT * c[f"mouthSmile{side}"])
        moved[:, 1] -= near * SMILE_UP * c[f"mouthSmile{side}"]
        on_side = np.clip(sign * across[outer] + 0.5, 0.0, 1.0)
        # pressing thins the lips: the outer edge moves toward the seam
        moved[outer, 1] -= PRESS_THIN * c[f"mouthPress{side}"] * on_side * thickness
        moved[outer, 1] -= upper_lip * on_side * LIP_RAISE * c[f"mouthUpperUp{side}"]
        moved[outer, 1] += ~upper_lip * on_side * LIP_RAISE * c[f"mouthLowerDown{side}"]
    rolled = np.where(upper_lip, c["mouthRollUpper"], c["mouthRollLower"])
    moved[outer, 1] -= ROLL_THIN * rolled * thickness


def _edge(x: np.ndarray, y: np.ndarray, indices: list[int], at: np.ndarray) -> np.ndarray:
    order = np.argsort(x[indices])
    return np.interp(at, x[indices][order], y[indices][order])


def smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    """0 below edge0, 1 above edge1, a smooth S between (the falloff every warp field uses)."""
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _turn_head(face: Face, moved: np.ndarray, yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Rotate the (already rigged) mesh about the head's centre and project it back (orthographic)."""
    depth = face.landmarks[:, 2:3].astype(np.float64)
    mesh = np.concatenate([moved, depth], axis=1)
    centre = mesh.mean(axis=0)
    centre[2] += 0.35 * float(
        np.linalg.norm(face.landmarks[CHIN, :2] - face.landmarks[FOREHEAD, :2])
    )  # pivot behind the face
    a, b, g = np.radians([yaw, pitch, roll])
    turn = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    tilt = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    spin = np.array([[np.cos(g), -np.sin(g), 0], [np.sin(g), np.cos(g), 0], [0, 0, 1]])
    rotated = (mesh - centre) @ (spin @ tilt @ turn).T + centre
    return rotated[:, :2]
