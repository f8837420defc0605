"""`ventriloquist analyze`: run the runtime mouth model over a file and write standard exports.

- curves CSV: `time_s`, the ARKit blendshapes, `viseme_<name>` for the 15 visemes; one row per 10 ms,
  `time_s` the audio time each row depicts (look-ahead already compensated);
- Rhubarb Lip Sync mouth cues (TSV or JSON, shapes A–H and X);
- a Live Link Face / ARKit per-frame CSV (the 61 columns Unreal's Live Link Face app records);
- a PNG with the waveform, a viseme strip and the mouth curves.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from firmware_app.audio.features import FeatureStream, frames_of
from firmware_app.frames import HOP_S, SAMPLE_RATE, AudioBlock
from firmware_app.mouth.base import MouthModel
from firmware_app.shapes import BLENDSHAPES, JAW_OPEN, MOUTH_CLOSE, VISEMES, aperture
from firmware_app.sources.audio_file import decode_audio

# Rhubarb's mouth shapes: A closed (M B P), B clenched teeth (most consonants, EE), C open (EH AE),
# D wide open (AA), E rounded (AO ER), F puckered (UW OW W), G teeth on lip (F V), H tongue (L), X idle.
VISEME_TO_RHUBARB = {
    "sil": "X",
    "PP": "A",
    "FF": "G",
    "TH": "B",
    "DD": "B",
    "kk": "B",
    "CH": "B",
    "SS": "B",
    "nn": "H",
    "RR": "E",
    "aa": "D",
    "E": "C",
    "ih": "B",
    "oh": "E",
    "ou": "F",
}

LIVE_LINK_BLENDSHAPES = (
    "EyeBlinkLeft EyeLookDownLeft EyeLookInLeft EyeLookOutLeft EyeLookUpLeft EyeSquintLeft EyeWideLeft "
    "EyeBlinkRight EyeLookDownRight EyeLookInRight EyeLookOutRight EyeLookUpRight EyeSquintRight EyeWideRight "
    "JawForward JawRight JawLeft JawOpen MouthClose MouthFunnel MouthPucker MouthRight MouthLeft "
    "MouthSmileLeft MouthSmileRight MouthFrownLeft MouthFrownRight MouthDimpleLeft MouthDimpleRight "
    "MouthStretchLeft MouthStretchRight MouthRollLower MouthRollUpper MouthShrugLower MouthShrugUpper "
    "MouthPressLeft MouthPressRight MouthLowerDownLeft MouthLowerDownRight MouthUpperUpLeft MouthUpperUpRight "
    "BrowDownLeft BrowDownRight BrowInnerUp BrowOuterUpLeft BrowOuterUpRight CheekPuff CheekSquintLeft "
    "CheekSquintRight NoseSneerLeft NoseSneerRight TongueOut HeadYaw HeadPitch HeadRoll LeftEyeYaw "
    "LeftEyePitch LeftEyeRoll RightEyeYaw RightEyePitch RightEyeRoll"
).split()


@dataclass(frozen=True)
class Curves:
    times: np.ndarray  # T, seconds
    blendshapes: np.ndarray  # T x len(BLENDSHAPES)
    visemes: np.ndarray  # T x 15 probabilities
    audio: np.ndarray  # the analysed samples, 16 kHz

    @property
    def aperture(self) -> np.ndarray:
        return aperture(self.blendshapes[:, JAW_OPEN], self.blendshapes[:, MOUTH_CLOSE])


def analyze_samples(samples: np.ndarray, model: MouthModel, block: int = 1600) -> Curves:
    """The model's curves for a whole recording: in one offline pass where the model offers one
    (the learned model's chunked graph, tested equal to streaming), else streamed in blocks exactly
    as the live pipeline does."""
    offline = getattr(model, "offline", None)
    result = offline(frames_of(samples)) if offline else None
    if result is not None:
        visemes, blend = result
        return Curves(np.arange(len(blend)) * HOP_S, blend, visemes, samples)
    return stream_samples(samples, model, block)


def stream_samples(samples: np.ndarray, model: MouthModel, block: int = 1600) -> Curves:
    """Stream the samples through features and the model exactly as the live pipeline does."""
    stream = FeatureStream()
    shapes = []
    for start in range(0, len(samples), block):
        shapes += model.push(stream.push(AudioBlock(samples[start : start + block], start / SAMPLE_RATE)))
    shapes += model.flush()
    frames = len(samples) // round(SAMPLE_RATE * HOP_S)
    shapes = shapes[:frames]
    blend = np.array([[s.get(name) for name in BLENDSHAPES] for s in shapes], np.float32).reshape(-1, len(BLENDSHAPES))
    visemes = np.array([_viseme_row(s.weights) for s in shapes], np.float32).reshape(-1, len(VISEMES))
    return Curves(np.array([s.t for s in shapes]), blend, visemes, samples)


def _viseme_row(weights: dict[str, float]) -> list[float]:
    if "viseme_sil" in weights:
        return [weights[f"viseme_{name}"] for name in VISEMES]
    # the loudness baseline knows only open or closed
    open_ = aperture(weights.get("jawOpen", 0.0), weights.get("mouthClose", 0.0)) >= 0.1
    return [float(name == ("aa" if open_ else "sil")) for name in VISEMES]


def analyze_file(path: Path, model: MouthModel) -> Curves:
    return analyze_samples(decode_audio(path), model)


def write_curves_csv(curves: Curves, out: Path) -> None:
    with open(out, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["time_s", *BLENDSHAPES, *(f"viseme_{v}" for v in VISEMES)])
        for t, blend, vis in zip(curves.times, curves.blendshapes, curves.visemes):
            writer.writerow([f"{t:.3f}", *(f"{x:.4f}" for x in blend), *(f"{x:.4f}" for x in vis)])


def mouth_cues(curves: Curves, min_duration_s: float = 0.04) -> list[tuple[float, float, str]]:
    """Rhubarb-style cues: (start, end, shape); cues shorter than min_duration_s merge into the previous."""
    shapes = [VISEME_TO_RHUBARB[VISEMES[i]] for i in curves.visemes.argmax(axis=1)]
    cues: list[list] = []
    for i, shape in enumerate(shapes):
        start = i * HOP_S
        if cues and cues[-1][2] == shape:
            cues[-1][1] = start + HOP_S
        elif cues and cues[-1][1] - cues[-1][0] < min_duration_s:
            cues[-1][1], cues[-1][2] = start + HOP_S, shape
        else:
            cues.append([start, start + HOP_S, shape])
    merged: list[tuple[float, float, str]] = []
    for start, end, shape in cues:
        if merged and merged[-1][2] == shape:
            merged[-1] = (merged[-1][0], end, shape)
        else:
            merged.append((start, end, shape))
    return merged


def write_cues(curves: Curves, out: Path, sound_file: str) -> None:
    cues = mouth_cues(curves)
    if out.suffix.lower() == ".json":
        document = {
            "metadata": {"soundFile": sound_file, "duration": round(len(curves.audio) / SAMPLE_RATE, 2)},
            "mouthCues": [{"start": round(s, 2), "end": round(e, 2), "value": v} for s, e, v in cues],
        }
        out.write_text(json.dumps(document, indent=2))
    else:
        lines = [f"{s:.2f}\t{v}" for s, _, v in cues] + [f"{cues[-1][1]:.2f}\tX"] if cues else []
        out.write_text("\n".join(lines) + "\n")


def write_live_link_csv(curves: Curves, out: Path, fps: float = 60.0) -> None:
    """Live Link Face's recording format, resampled from 100 Hz to `fps`; unset channels are 0."""
    ours = {name[0].upper() + name[1:]: i for i, name in enumerate(BLENDSHAPES)}
    frame_times = np.arange(int(len(curves.times) * HOP_S * fps)) / fps
    table = np.zeros((len(frame_times), len(LIVE_LINK_BLENDSHAPES)), np.float32)
    for column, name in enumerate(LIVE_LINK_BLENDSHAPES):
        if name in ours:
            table[:, column] = np.interp(frame_times, curves.times, curves.blendshapes[:, ours[name]])
    with open(out, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Timecode", "BlendShapeCount", *LIVE_LINK_BLENDSHAPES])
        for t, row in zip(frame_times, table):
            writer.writerow([_timecode(t, fps), len(LIVE_LINK_BLENDSHAPES), *(f"{x:.4f}" for x in row)])


def _timecode(t: float, fps: float) -> str:
    whole = int(t)
    frame = int(round((t - whole) * fps))
    return f"{whole // 3600:02d}:{whole // 60 % 60:02d}:{whole % 60:02d}:{frame:02d}.000"


def write_plot(curves: Curves, out: Path, width: int = 1600) -> None:
    """Waveform, viseme strip and mouth curves on one time axis (OpenCV, no plotting library)."""
    rows = {"wave": 140, "visemes": 60, "curves": 260}
    height = sum(rows.values()) + 40
    image = np.full((height, width, 3), 255, np.uint8)
    duration = max(len(curves.audio) / SAMPLE_RATE, 1e-3)
    x_of = lambda t: int(t / duration * (width - 1))  # noqa: E731
    # waveform: per-column peak
    top, h = 10, rows["wave"]
    columns = np.array_split(np.abs(curves.audio), width)
    for x, col in enumerate(columns):
        peak = float(col.max()) if len(col) else 0.0
        cv2.line(image, (x, top + h // 2 - int(peak * h / 2)), (x, top + h // 2 + int(peak * h / 2)), (90, 90, 90))
    # viseme strip
    top = 10 + rows["wave"] + 10
    best = curves.visemes.argmax(axis=1)
    palette = [
        tuple(int(c) for c in cv2.applyColorMap(np.uint8([[i * 17]]), cv2.COLORMAP_TURBO)[0, 0])
        for i in range(len(VISEMES))
    ]
    start = 0
    for i in range(1, len(best) + 1):
        if i == len(best) or best[i] != best[start]:
            x0, x1 = x_of(curves.times[start]), x_of(curves.times[i - 1] + HOP_S)
            cv2.rectangle(image, (x0, top), (x1, top + rows["visemes"]), palette[best[start]], -1)
            if x1 - x0 > 18:
                cv2.putText(
                    image,
                    VISEMES[best[start]],
                    (x0 + 2, top + 35),
                    cv2.FONT_HERSHEY_SIMPLEX,
                    0.4,
                    (0, 0, 0),
                    1,
                    cv2.LINE_AA,
                )
            start = i
    # curves
    top = 10 + rows["wave"] + 10 + rows["visemes"] + 10
    h = rows["curves"]
    series = {
        "aperture": (curves.aperture, (0, 0, 0)),
        "jawOpen": (curves.blendshapes[:, BLENDSHAPES.index("jawOpen")], (200, 80, 0)),
        "mouthClose": (curves.blendshapes[:, BLENDSHAPES.index("mouthClose")], (0, 0, 200)),
        "mouthFunnel": (curves.blendshapes[:, BLENDSHAPES.index("mouthFunnel")], (0, 160, 0)),
        "mouthPucker": (curves.blendshapes[:, BLENDSHAPES.index("mouthPucker")], (160, 0, 160)),
    }
    for k, (name, (values, colour)) in enumerate(series.items()):
        points = np.array([[x_of(t), top + h - int(v * h)] for t, v in zip(curves.times, values)], np.int32)
        if len(points) > 1:
            cv2.polylines(image, [points], False, colour, 1, cv2.LINE_AA)
        cv2.putText(image, name, (10 + 130 * k, height - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1, cv2.LINE_AA)
    cv2.imwrite(str(out), image)
