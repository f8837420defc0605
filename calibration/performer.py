"""A stand-in performer: a real face (`skimage.data.astronaut()`) that turns, nods and blinks on a
known script, written as a clip. Puppet mode reads it where a camera would be, so the chain
performer → MediaPipe → puppet can be checked without a person in front of a camera.

    python -m calibration.performer out.mp4 --seconds 8 --sheet calibration/report/puppet_sheet.jpg

`--sheet` also renders the bundled portrait speaking the bundled clip, driven by this performer,
and writes performer (top) and puppet (bottom) side by side at moments of the script.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import cv2
import numpy as np

from firmware_app.config import RendererSettings, TrackerSettings
from firmware_app.face.expression import pulse
from firmware_app.face.tracker import FaceTracker
from firmware_app.frames import VideoFrame
from firmware_app.render import animate_face
from firmware_app.sinks.file import FileSink
from firmware_app.sources.base import fit_frame

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


SHEET_TIMES = (0.0, 1.0, 1.15, 2.0, 3.0, 4.45, 5.0, 7.0)  # seconds: turns, nods and two blink peaks


def puppet_sheet(performer_clip: Path, out: Path, tile: int = 200) -> Path:
    """Render the bundled puppet driven by `performer_clip`; write performer/puppet tiles side by side."""
    import tempfile

    from firmware_app.assets import BUNDLED_DIR
    from firmware_app.config import Settings
    from firmware_app.runners.offline import render_offline
    from firmware_app.sources.video_file import decode_frames

    with tempfile.TemporaryDirectory() as tmp:
        puppet = Path(tmp) / "puppet.mp4"
        render_offline(
            Settings(),
            str(BUNDLED_DIR / "speech.wav"),
            str(BUNDLED_DIR / "portrait.jpg"),
            str(puppet),
            str(performer_clip),
        )
        rows = [decode_frames(performer_clip), decode_frames(puppet)]
    picked = [[_face_tile(frames[min(round(t * FPS), len(frames) - 1)], tile) for t in SHEET_TIMES] for frames in rows]
    sheet = np.vstack([np.hstack(row) for row in picked])
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), sheet, [cv2.IMWRITE_JPEG_QUALITY, 88])
    return out


def _face_tile(frame: np.ndarray, size: int) -> np.ndarray:
    """The middle of the frame, where the face is, as a square tile."""
    height, width = frame.shape[:2]
    side = int(height * 0.8)
    x0, y0 = (width - side) // 2, max(0, int(height * 0.05))
    return cv2.resize(frame[y0 : y0 + side, x0 : x0 + side], (size, size), interpolation=cv2.INTER_AREA)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--sheet", type=Path, help="also render the puppet it drives and write a contact sheet here")
    args = parser.parse_args()
    print(f"wrote {write_performer_clip(args.out, args.seconds)}")
    if args.sheet:
        print(f"wrote {puppet_sheet(args.out, args.sheet)}")


if __name__ == "__main__":
    main()
