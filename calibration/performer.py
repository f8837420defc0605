"""A stand-in performer: a real face (`skimage.data.astronaut()`) that turns, nods and blinks on a
known script, written as a clip. Puppet mode reads it where a camera would be, so the chain
performer → MediaPipe → puppet can be checked without a person in front of a camera.

    python -m calibration.performer out.mp4 --seconds 8
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import cv2
import numpy as np

from firmware_app.config import RendererSettings, TrackerSettings
from firmware_app.expression import pulse
from firmware_app.frames import VideoFrame
from firmware_app.render import animate_face
from firmware_app.sinks.file import FileSink
from firmware_app.sources.base import fit_frame
from firmware_app.tracker import FaceTracker

FPS = 30.0
SIZE = (640, 480)
BLINKS_AT = (1.0, 2.6, 4.3, 6.1)  # seconds; each closes and opens over BLINK_S
BLINK_S = 0.3


def script(t: float) -> dict[str, float]:
    """The performer's head and eyes at time t (rig controls)."""
    blink = max((pulse(t - start, BLINK_S) for start in BLINKS_AT), default=0.0)
    return {
        "headYaw": 12.0 * math.sin(2 * math.pi * t / 4.0),
        "headPitch": 5.0 * math.sin(2 * math.pi * t / 3.0),
        "eyeBlinkLeft": blink,
        "eyeBlinkRight": blink,
    }


def write_performer_clip(path: Path, seconds: float) -> Path:
    from skimage import data

    image = fit_frame(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR), SIZE)
    with FaceTracker(TrackerSettings(smoothing=False)) as tracker:
        face = tracker.track(VideoFrame(image, 0.0, 0))
    if face is None:
        raise RuntimeError("MediaPipe finds no face in the astronaut image")
    sink = FileSink(path)
    sink.open(*SIZE, FPS)
    try:
        for i in range(round(seconds * FPS)):
            t = i / FPS
            frame = animate_face(image, face, script(t), 0.0, RendererSettings().interior_color)  # lips closed
            sink.write_video(VideoFrame(frame, t, i))
    finally:
        sink.close()
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    print(f"wrote {write_performer_clip(args.out, args.seconds)}")


if __name__ == "__main__":
    main()
