"""Contact sheets of every face as the appliance draws it, written outside the repository.

    python -m calibration.contact_sheets [--out /tmp/ventriloquist-sheets] [--only NAME,…] [--face PHOTO …]

Per identity (`calibration.identities`: the bundled portrait, the astronaut, the photos in
`../shared/faces`, and any `--face`): the photo, then rest, aa, oh, ee, PP, FF and TH held, and a
strip of the bundled speech, drawn by the shipped renderer (donor library, per-face opening scale
with MediaPipe lent as the tracker is). One `NAME.jpg` per identity in `--out`, which must lie
outside the repository: most of the shared faces may not be committed (see their SOURCES.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from calibration.fidelity import Measurer
from calibration.identities import PROJECT, Render, chosen_identities, contact_sheet, identity_arguments, speech_track
from firmware_app.config import Settings
from firmware_app.frames import MouthShape, VideoFrame
from firmware_app.render import Renderer

POSES = ("rest", "aa", "oh", "E", "PP", "FF", "TH")  # E: the "ee" viseme
HELD = 4  # frames each pose is held before it is taken (the mouth source's lookup settles)


def appliance_render(measurer: Measurer) -> Render:
    """A `Render` drawing as the appliance draws a still: one renderer, frame after frame."""
    settings = Settings()
    renderer = Renderer(settings.renderer, settings.disclosure.model_copy(update={"enabled": False}))
    renderer.measure = measurer.face
    count = [0]

    def render(image: np.ndarray, face, weights: dict[str, float]) -> np.ndarray:  # type: ignore[no-untyped-def]
        out = image
        for _ in range(HELD):
            i = count[0]
            out = renderer.render(VideoFrame(image, i / 25, i, still=i > 0), face, MouthShape(i / 25, weights))
            count[0] += 1
        return out

    return render


def write_sheets(images: dict[str, np.ndarray], out: Path) -> list[Path]:
    """One sheet per identity in `out`; the paths written."""
    track = speech_track()
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, image in images.items():
        with Measurer() as measurer:
            face = measurer.face(image)
            if face is None:
                print(f"{name}: MediaPipe finds no face in the picture; no sheet", flush=True)
                continue
            sheet = contact_sheet(image, face, track, appliance_render(measurer), POSES)
        path = out / f"{name}.jpg"
        cv2.imwrite(str(path), sheet, [cv2.IMWRITE_JPEG_QUALITY, 90])
        written.append(path)
        print(path, flush=True)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("/tmp/ventriloquist-sheets"), help="outside the repository")
    identity_arguments(parser)
    args = parser.parse_args()
    if args.out.resolve().is_relative_to(PROJECT.resolve()):
        parser.error(f"--out {args.out} is inside the repository: give a folder outside it, e.g. /tmp/sheets")
    images = chosen_identities(parser, args)
    write_sheets(images, args.out)


if __name__ == "__main__":
    main()
