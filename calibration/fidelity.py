"""Closed-loop rig fidelity: command the renderer, re-measure the result with MediaPipe, compare.

    python -m calibration.fidelity --out calibration/report

For each test face (the bundled portrait, `skimage.data.astronaut()`, frames of a clip) the
renderer draws a sweep of commanded values; MediaPipe tracks the *rendered* frames and we compare
what was asked with what is seen, both as geometry (lip gap, mouth width, eye opening, head
angles — what the rig actually controls) and as MediaPipe's own blendshape scores. Writes
`fidelity.md` / `fidelity.json` and a contact sheet of open, closed, rounded and spread mouths and
a blink. `tests/test_rig_fidelity.py` fails if fidelity drops below the levels measured here.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from firmware_app.assets import BUNDLED_DIR
from firmware_app.config import RendererSettings, Settings, TrackerSettings
from firmware_app.face.tracker import FaceTracker
from firmware_app.frames import Face, VideoFrame
from firmware_app.render import animate_face
from firmware_app.render.mouth import planned_gap
from firmware_app.render.rig import FUNNEL_NARROW, PUCKER_NARROW, FaceFrame
from firmware_app.sources.base import fit_frame
from firmware_app.sources.video_file import decode_frames

SIZE = (1280, 720)
APERTURES = (0.0, 0.25, 0.5, 0.75, 1.0)
ROUNDING = (0.0, 0.25, 0.5, 0.75, 1.0)
BLINKS = (0.0, 0.25, 0.5, 0.75, 1.0)
ANGLES = (-10.0, -5.0, 0.0, 5.0, 10.0)


@dataclass
class Sweep:
    """One control swept on one face: commanded values and what MediaPipe measured."""

    control: str
    commanded: list[float]
    geometry: list[float]  # the rig's own measure: lip gap, narrowing, lid closure, angle change
    score: list[float]  # MediaPipe's blendshape (or angle) for the same thing
    nominal: float = 1.0  # geometry the rig means to produce per unit commanded


def fidelity_faces(clip: Path | None = None) -> dict[str, np.ndarray]:
    """Real faces at the pipeline's frame size: portrait, astronaut, and a clip's frames."""
    from skimage import data

    faces = {
        "portrait": fit_frame(cv2.imread(str(BUNDLED_DIR / "portrait.jpg")), SIZE),
        "astronaut": fit_frame(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR), SIZE),
    }
    if clip is not None:
        frames = decode_frames(clip)
        for i in (len(frames) // 4, 3 * len(frames) // 4):
            faces[f"clip frame {i}"] = fit_frame(frames[i], SIZE)
    return faces


class Measurer:
    """MediaPipe on single images (VIDEO mode with a fresh timestamp each time, no smoothing)."""

    def __init__(self) -> None:
        self.tracker = FaceTracker(TrackerSettings(smoothing=False, hold_frames=0))
        self.t = 0.0

    def __enter__(self) -> Measurer:
        self.tracker.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.tracker.close()

    def face(self, image: np.ndarray) -> Face | None:
        self.t += 1.0  # a second apart: nothing carries over between images
        self.tracker._window_centre = None  # nor where the last face was: look at the middle first
        self.tracker._search_step = 0
        for _ in range(3):  # middle, one side, the other (the tracker's own sweep)
            face = self.tracker._detect(VideoFrame(image, self.t, 0))
            if face is not None:
                return face
            self.t += 1.0
        return None


def lip_gap(face: Face) -> float:
    """Inner lip gap at the middle, in face heights."""
    p = face.landmarks[:, :2]
    return float(np.linalg.norm(p[14] - p[13]) / FaceFrame.of(face).scale)


def mouth_width(face: Face) -> float:
    p = face.landmarks[:, :2]
    return float(np.linalg.norm(p[291] - p[61]) / FaceFrame.of(face).scale)


def eye_opening(face: Face) -> float:
    """Mean lid gap of both eyes, in face heights."""
    p = face.landmarks[:, :2]
    gaps = [np.linalg.norm(p[145] - p[159]), np.linalg.norm(p[374] - p[386])]
    return float(np.mean(gaps) / FaceFrame.of(face).scale)


def sweep_face(image: np.ndarray, measurer: Measurer, max_open: float) -> list[Sweep]:
    face = measurer.face(image)
    if face is None:
        raise RuntimeError("MediaPipe finds no face in the test image")
    color = RendererSettings().interior_color
    width0, eyes0 = mouth_width(face), eye_opening(face)

    def render(controls: dict[str, float], aperture: float) -> Face | None:
        return measurer.face(animate_face(image, face, controls, aperture * max_open, color))

    sweeps = []
    # a still showing its upper teeth keeps them and opens below them (render.mouth.intended_gap)
    intended = [planned_gap(image, face, a * max_open) / max_open for a in APERTURES]
    measured = [render({}, a) for a in APERTURES]
    sweeps.append(
        Sweep(
            "lip aperture (gap / max_open)",
            intended,
            [lip_gap(f) / max_open for f in measured],
            [f.blendshapes["jawOpen"] for f in measured],
        )
    )
    for control in ("mouthPucker", "mouthFunnel"):
        measured = [render({control: r}, 0.15) for r in ROUNDING]
        nominal = PUCKER_NARROW if control == "mouthPucker" else FUNNEL_NARROW
        sweeps.append(
            Sweep(
                f"{control} (mouth narrowing)",
                list(ROUNDING),
                [1 - mouth_width(f) / width0 for f in measured],
                [f.blendshapes[control] for f in measured],
                nominal,
            )
        )
    measured = [render({"eyeBlinkLeft": b, "eyeBlinkRight": b}, 0.0) for b in BLINKS]
    sweeps.append(
        Sweep(
            "eyeBlink (lid closure)",
            list(BLINKS),
            [1 - eye_opening(f) / eyes0 for f in measured],
            [(f.blendshapes["eyeBlinkLeft"] + f.blendshapes["eyeBlinkRight"]) / 2 for f in measured],
        )
    )
    for axis, name in enumerate(("headYaw", "headPitch", "headRoll")):
        measured = [render({name: a}, 0.0) for a in ANGLES]
        change = [f.pose[axis] - face.pose[axis] for f in measured]
        sweeps.append(Sweep(f"{name} (degrees)", list(ANGLES), change, change))
    return sweeps


def summarise(sweep: Sweep) -> dict[str, float]:
    commanded, geometry, score = (np.array(v, np.float64) for v in (sweep.commanded, sweep.geometry, sweep.score))
    out = {"geometry_corr": _corr(commanded, geometry), "score_corr": _corr(commanded, score)}
    expected = commanded * sweep.nominal
    out["geometry_mae"] = float(np.mean(np.abs(geometry - expected)))
    slope = np.polyfit(expected, geometry, 1)[0] if np.ptp(expected) > 0 else 0.0
    out["geometry_gain"] = float(slope)  # measured change per intended change; 1 is exact
    return out


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    if np.std(a) < 1e-9 or np.std(b) < 1e-9:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def measure(faces: dict[str, np.ndarray], max_open: float) -> dict[str, dict[str, dict[str, float]]]:
    """{face: {control: {geometry_corr, score_corr, geometry_mae, geometry_gain, and the raw sweeps}}}"""
    results: dict[str, dict[str, dict[str, float]]] = {}
    with Measurer() as measurer:
        for name, image in faces.items():
            results[name] = {
                s.control: {**summarise(s), "commanded": s.commanded, "geometry": s.geometry, "score": s.score}
                for s in sweep_face(image, measurer, max_open)
            }
    return results


def table(results: dict[str, dict[str, dict]]) -> str:
    lines = [
        "| face | control | corr (geometry) | gain (measured / intended) | mean abs error | corr (MediaPipe score) |",
        "|---|---|---|---|---|---|",
    ]
    for face, controls in results.items():
        for control, r in controls.items():
            lines.append(
                f"| {face} | {control} | {r['geometry_corr']:.3f} | {r['geometry_gain']:.3f} | "
                f"{r['geometry_mae']:.3f} | {r['score_corr']:.3f} |"
            )
    return "\n".join(lines) + "\n"


CONTACT_SHEET = (  # (label, controls, aperture)
    ("as tracked", {}, None),
    ("open", {}, 1.0),
    ("closed", {}, 0.0),
    ("rounded", {"mouthPucker": 0.8, "mouthFunnel": 0.4}, 0.35),
    ("spread", {"mouthStretchLeft": 0.8, "mouthStretchRight": 0.8, "mouthSmileLeft": 0.5, "mouthSmileRight": 0.5}, 0.3),
    ("blink", {"eyeBlinkLeft": 1.0, "eyeBlinkRight": 1.0}, 0.0),
    ("head turned", {"headYaw": 10.0, "headRoll": 5.0}, 0.5),
)


def contact_sheet(faces: dict[str, np.ndarray], max_open: float, tile: int = 240) -> np.ndarray:
    """One row per face, one column per expression, cropped to the face."""
    rows = []
    with Measurer() as measurer:
        for name, image in faces.items():
            face = measurer.face(image)
            if face is None:
                continue
            frame = FaceFrame.of(face)
            centre, half = face.landmarks[:, :2].mean(axis=0), int(frame.scale * 0.75)
            tiles = []
            for label, controls, aperture in CONTACT_SHEET:
                out = (
                    image
                    if aperture is None
                    else animate_face(image, face, controls, aperture * max_open, RendererSettings().interior_color)
                )
                tiles.append(_tile(out, centre, half, tile, label if name == next(iter(faces)) else ""))
            rows.append(np.hstack(tiles))
    return np.vstack(rows)


def _tile(image: np.ndarray, centre: np.ndarray, half: int, size: int, label: str) -> np.ndarray:
    x, y = int(centre[0]), int(centre[1])
    padded = cv2.copyMakeBorder(image, half, half, half, half, cv2.BORDER_REPLICATE)
    crop = cv2.resize(padded[y : y + 2 * half, x : x + 2 * half], (size, size), interpolation=cv2.INTER_AREA)
    if label:
        cv2.putText(crop, label, (8, 22), cv2.FONT_HERSHEY_DUPLEX, 0.6, (255, 255, 255), 2, cv2.LINE_AA)
        cv2.putText(crop, label, (8, 22), cv2.FONT_HERSHEY_DUPLEX, 0.6, (20, 20, 20), 1, cv2.LINE_AA)
    return crop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("calibration/report"))
    parser.add_argument("--clip", type=Path, help="a video clip whose frames join the test faces")
    args = parser.parse_args()
    max_open = Settings().renderer.max_open
    faces = fidelity_faces(args.clip)
    results = measure(faces, max_open)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fidelity.json").write_text(json.dumps(results, indent=2))
    text = table(results)
    (args.out / "fidelity.md").write_text("# Closed-loop rig fidelity (`python -m calibration.fidelity`)\n\n" + text)
    cv2.imwrite(str(args.out / "contact_sheet.jpg"), contact_sheet(faces, max_open), [cv2.IMWRITE_JPEG_QUALITY, 88])
    print(text)


if __name__ == "__main__":
    main()
