"""`ventriloquist enroll CLIP --out NAME.face --consent "…"`: a person's own mouth, from a clip of them talking.

1. Every frame is tracked with MediaPipe (the project's `FaceTracker`, unsmoothed: each frame's own
   landmarks); frames with the head turned too far, a blurred mouth, or lips out of the picture or
   hidden (their colour far from the clip's usual lip colour) are rejected and counted.
2. The mouth region is pose-normalised: resampled in the mouth's own frame (u along the lips, v
   down the face, in face heights; see `face.pack`), and each frame is described by its mouth
   shape (mouth blendshapes, the inner-lip gap profile, the inner width).
3. The shapes are clustered; each cluster's frames nearest its centre are warped onto the one
   nearest it and pre-merged by a weighted median (*Synthesizing Obama*), so the runtime only looks
   up. Frames showing the teeth sharpest become the teeth proxy: their fine detail is given to
   every exemplar that shows teeth, so merged teeth stay as sharp as the sharpest real ones.
4. The rest pose (the reference still: a sharp, frontal frame with the lips closed) and the range
   of apertures are recorded; a coverage report says which shapes the clip lacks and what to say
   (`calibration/enroll_script.txt` covers them all).
5. The pack is written (`face.pack`, atomically) with a manifest (format version, the clip's hash,
   frames used, coverage, the consent statement, the date). No sound is read or stored.

With `--holdout --report`, the frames left out of the bank are re-synthesised and scored
(`face.reenact`).
"""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from firmware_app.assets import sha256_of
from firmware_app.config import TrackerSettings
from firmware_app.errors import ExitCode, MediaError, VentriloquistError
from firmware_app.face.clip import clip_info, progress_bar, read_clip
from firmware_app.face.pack import (
    EDGE_S,
    GAP_S,
    MOUTH_BLENDSHAPES,
    Bank,
    exemplar_coords,
    patch_pixels,
    write_face_pack,
)
from firmware_app.face.reenact import score_holdout, table
from firmware_app.face.tracker import FaceTracker
from firmware_app.frames import Face, VideoFrame
from firmware_app.render.exemplars import describe, mouth_grid, normalise_mouth, teeth_share
from firmware_app.render.mouth import INNER_LOWER, OUTER_LOWER, face_light

log = logging.getLogger(__name__)

SCRIPT = Path(__file__).with_name("enroll_script.txt")
MAX_YAW, MAX_PITCH = 25.0, 20.0  # degrees: a face turned further is not used
BLUR_SHARE = 0.4  # a mouth whose Laplacian variance is below this share of the clip's median is blurred
HIDDEN_COLOUR = 45.0  # lips whose median colour is this far (0-255, per channel max) from the clip's are hidden
MAX_RESOLUTION = 320.0  # patch pixels per face height, at most (a 720p face is about this tall)
MERGED = 5  # frames pre-merged into one exemplar
FRAMES_PER_EXEMPLAR = 8  # the bank has one exemplar per this many kept frames ...
MAX_EXEMPLARS = 96  # ... up to this many
TEETH_FRAMES = 3  # frames of the sharpest teeth kept as the proxy
GEOMETRY_WEIGHT = 1.5  # the gap profile counts this much more than a blendshape in the lookup
WIDE_OPEN = 0.07  # inner-lip gap (face heights) of a wide-open mouth
CLOSED = 0.006
ROUNDED = 0.3  # mouthFunnel + mouthPucker
NARROW = 0.85  # ... or lips this much narrower than the clip's median
TEETH = 0.08  # share of the opening's middle that looks like teeth
COVERED = 8  # frames a shape needs to count as covered
ADVICE = {
    "wide open": 'open wide on long vowels: say the script\'s first block ("father", "hot", "saw")',
    "rounded": 'round the lips: say the block with "who", "moon", "oh no", "you"',
    "closed": "close the lips fully: say the block of p, b and m words and pause with the mouth shut",
    "teeth showing": 'show the teeth: say the block with "see", "cheese", "fifty", "this", and smile between lines',
}


class UsageError(VentriloquistError):
    exit_code = ExitCode.USAGE
    title = "usage error"


@dataclass
class TrackedFrame:
    index: int
    face: Face
    key: np.ndarray  # shape descriptor (`face.pack.descriptor`)
    sharpness: float  # variance of the Laplacian of the pose-normalised mouth
    lips: np.ndarray  # median lip colour, B G R
    teeth: float  # share of the opening's middle that looks like teeth
    patch: np.ndarray  # pose-normalised mouth, uint8
    upper: np.ndarray  # inner lip edges at EDGE_S, face heights
    lower: np.ndarray
    half_width: float
    yaw: float
    pitch: float

    @property
    def gap(self) -> float:
        return float(self.key[len(MOUTH_BLENDSHAPES) + GAP_S.index(0.0)])


@dataclass
class Enrollment:
    """What enrolling a clip found: the frames it kept and why it dropped the others."""

    clip: Path
    frames: int = 0
    kept: list[TrackedFrame] = field(default_factory=list)
    rejected: dict[str, int] = field(default_factory=lambda: {"no face": 0, "turned": 0, "blurred": 0, "hidden": 0})
    resolution: float = 0.0
    fps: float = 25.0

    def summary(self) -> str:
        why = ", ".join(f"{n} {reason}" for reason, n in self.rejected.items() if n)
        return f"kept {len(self.kept)} of {self.frames} frames" + (f" (rejected: {why})" if why else "")


def track_clip(clip: Path, model_path: str, stop: int | None = None, progress: bool = True) -> Enrollment:
    """Track frames [0, stop) of `clip`, describe each and reject the unusable ones."""
    count, fps, _ = clip_info(clip)
    stop = count if stop is None else min(stop, count)
    result = Enrollment(clip, fps=fps)
    tracker = FaceTracker(TrackerSettings(model_path=model_path, max_faces=1, hold_frames=0, smoothing=False))
    frames: list[TrackedFrame] = []
    with tracker, progress_bar(stop, "tracking", progress) as bar:
        for index, t, image in read_clip(clip, 0, stop):
            face = tracker.track(VideoFrame(image, t, index))
            result.frames += 1
            bar.update(1)
            if face is None:
                result.rejected["no face"] += 1
                continue
            if not frames:  # patches are stored at about the clip's own scale, so nothing is invented
                height = float(np.linalg.norm(face.landmarks[152, :2] - face.landmarks[10, :2]))
                result.resolution = float(np.clip(height, 48.0, MAX_RESOLUTION))
            frames.append(measure_frame(index, image, face, result.resolution))
    if not frames:
        raise MediaError(
            f"no face was found in any frame of {clip}",
            "film the person from the front, their face at least a fifth of the frame's height",
        )
    reject_unusable(frames, result)
    return result


def measure_frame(index: int, image: np.ndarray, face: Face, resolution: float) -> TrackedFrame:
    """One tracked frame described: its pose-normalised mouth, shape, sharpness, lip colour, teeth."""
    patch, upper, lower, half_width = normalise_mouth(image, face, resolution)
    grey = cv2.cvtColor(patch, cv2.COLOR_BGR2GRAY)
    light = face_light(image, face, (0, 0, 0))
    yaw, pitch, _ = face.pose
    out_of_view = _lips_out_of_view(image, face)
    return TrackedFrame(
        index=index,
        face=face,
        key=describe(face, upper, lower, half_width),
        sharpness=float(cv2.Laplacian(grey, cv2.CV_32F).var()),
        lips=np.full(3, np.nan, np.float32) if out_of_view else light.lips.astype(np.float32),
        teeth=teeth_share(patch, upper, lower, half_width, resolution, light.lips),
        patch=patch,
        upper=upper,
        lower=lower,
        half_width=half_width,
        yaw=yaw,
        pitch=pitch,
    )


def _lips_out_of_view(image: np.ndarray, face: Face) -> bool:
    h, w = image.shape[:2]
    p = face.landmarks[OUTER_LOWER + INNER_LOWER, :2]
    return bool((p[:, 0] < 0).any() or (p[:, 1] < 0).any() or (p[:, 0] >= w).any() or (p[:, 1] >= h).any())


def reject_unusable(frames: list[TrackedFrame], result: Enrollment) -> None:
    """Keep the frontal, sharp, unhidden frames; count the others by reason (the first that applies)."""
    sharp = np.median([f.sharpness for f in frames])
    lips = np.nanmedian(np.array([f.lips for f in frames]), axis=0)
    for f in frames:
        if abs(f.yaw) > MAX_YAW or abs(f.pitch) > MAX_PITCH:
            result.rejected["turned"] += 1
        elif f.sharpness < BLUR_SHARE * sharp:
            result.rejected["blurred"] += 1
        elif not np.isfinite(f.lips).all() or np.abs(f.lips - lips).max() > HIDDEN_COLOUR:
            result.rejected["hidden"] += 1
        else:
            result.kept.append(f)


def build_bank(
    frames: list[TrackedFrame],
    resolution: float,
    seed: int = 1,
    per_exemplar: int = FRAMES_PER_EXEMPLAR,
    merged: int = MERGED,
) -> Bank:
    """Cluster the kept frames by mouth shape (one exemplar per `per_exemplar` frames) and
    pre-merge each cluster's `merged` frames nearest its centre into one exemplar."""
    if len(frames) < 8:
        raise MediaError(
            f"only {len(frames)} usable frames",
            "film at least a minute of the person talking towards the camera, face lit and in focus",
        )
    keys = np.array([f.key for f in frames], np.float32)
    scale = np.maximum(keys.std(axis=0), 1e-3).astype(np.float32)
    scale[len(MOUTH_BLENDSHAPES) :] /= GEOMETRY_WEIGHT
    k = int(np.clip(len(frames) // per_exemplar, 4, MAX_EXEMPLARS))
    cv2.setRNGSeed(seed)
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 50, 1e-3)
    _, labels, centres = cv2.kmeans(keys / scale, k, None, criteria, 3, cv2.KMEANS_PP_CENTERS)
    proxy = _proxy_detail(teeth_proxy(frames), resolution)
    exemplars, members = [], []
    for c in range(k):
        idx = np.flatnonzero(labels.ravel() == c)
        if len(idx) == 0:
            continue
        d = np.linalg.norm(keys[idx] / scale - centres[c], axis=1)
        nearest = idx[np.argsort(d)][:merged]
        exemplars.append(_merge([frames[i] for i in nearest], np.sort(d)[:merged], resolution, proxy))
        members.append([frames[i].index for i in nearest])
    by_index = {f.index: f for f in frames}
    medoids = [by_index[m[0]] for m in members]
    return Bank(
        textures=np.stack(exemplars),
        upper=np.stack([m.upper for m in medoids]),
        lower=np.stack([m.lower for m in medoids]),
        half_width=np.array([m.half_width for m in medoids], np.float32),
        keys=np.stack([m.key for m in medoids]),
        scale=scale,
        lips=np.median(np.array([f.lips for f in frames]), axis=0).astype(np.float32),
        resolution=resolution,
        teeth=_teeth_levels([float(np.mean([by_index[i].teeth for i in m])) for m in members], frames),
    )


def _merge(
    members: list[TrackedFrame], distances: np.ndarray, resolution: float, proxy: np.ndarray | None
) -> np.ndarray:
    """The members warped onto the first one's lips and merged by a per-pixel weighted median."""
    first = members[0]
    u, v = mouth_grid(resolution)
    s = u / first.half_width
    d_top = v - np.interp(s, EDGE_S, first.upper)
    d_bot = np.interp(s, EDGE_S, first.lower) - v
    stack = []
    for m in members:
        mu, mv = exemplar_coords(s, d_top, d_bot, m.upper, m.lower, m.half_width)
        px, py = patch_pixels(mu, mv, resolution)
        stack.append(cv2.remap(m.patch, px, py, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE))
    weights = np.exp(-0.5 * (distances / max(float(np.median(distances)), 1e-3)) ** 2)
    merged = weighted_median(np.stack(stack).astype(np.float32), weights)
    if proxy is not None and first.teeth > TEETH:
        merged = _sharpen_teeth(merged, proxy, first, resolution)
    return np.clip(merged + 0.5, 0, 255).astype(np.uint8)


def weighted_median(stack: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per-element weighted median along axis 0 of `stack` (N x …) with one weight per entry."""
    order = np.argsort(stack, axis=0)
    ordered = np.take_along_axis(stack, order, axis=0)
    cumulative = np.cumsum(weights[order], axis=0)
    pick = (cumulative >= 0.5 * weights.sum()).argmax(axis=0)
    return np.take_along_axis(ordered, pick[None], axis=0)[0]


def _teeth_levels(shares: list[float], frames: list[TrackedFrame]) -> np.ndarray:
    top = max(float(np.percentile([f.teeth for f in frames], 90)), 1e-3)
    return np.clip(np.array(shares, np.float32) / top, 0.0, 1.0)


def teeth_proxy(frames: list[TrackedFrame]) -> list[TrackedFrame]:
    """The sharpest frames that show the teeth well (the bank's teeth proxy), sharpest first."""
    showing = [i for i, f in enumerate(frames) if f.teeth > 2 * TEETH]
    return [frames[i] for i in sorted(showing, key=lambda i: -frames[i].sharpness)[:TEETH_FRAMES]]


def _proxy_detail(frames: list[TrackedFrame], resolution: float) -> np.ndarray | None:
    """The fine detail (what a small blur removes) of the teeth proxy frames, warped onto the
    first one's lips and merged: added to merged exemplars with teeth, it keeps them sharp."""
    if not frames:
        return None
    merged = _merge_plain(frames, resolution)
    return (merged - cv2.GaussianBlur(merged, (0, 0), 1.0)).astype(np.float32)


def _merge_plain(frames: list[TrackedFrame], resolution: float) -> np.ndarray:
    return _merge(frames, np.zeros(len(frames)), resolution, None).astype(np.float32)


def _sharpen_teeth(merged: np.ndarray, detail: np.ndarray, first: TrackedFrame, resolution: float) -> np.ndarray:
    """Where the merged exemplar has its upper teeth, the proxy's high frequencies are restored, up
    to the amount the merge removed (never sharper than the sharpest real frame)."""
    u, v = mouth_grid(resolution)
    s = u / first.half_width
    below_lip = v - np.interp(s, EDGE_S, first.upper)
    inside = (np.abs(s) < 0.8) & (below_lip > 0) & (v < np.interp(s, EDGE_S, first.lower))
    band = inside & (below_lip < 0.05)  # crowns hang about this far below the upper lip, face heights
    grey = merged.mean(axis=2)
    own_detail = merged - cv2.GaussianBlur(merged, (0, 0), 1.0)
    toothlike = grey > np.percentile(grey[inside], 50) if inside.any() else np.zeros_like(band)
    alpha = cv2.GaussianBlur((band & toothlike).astype(np.float32), (0, 0), 1.0)[..., None]
    return merged + alpha * (detail - own_detail)


def rest_frame(frames: list[TrackedFrame]) -> TrackedFrame:
    """The person at rest: lips closed (the smallest gaps), then the most frontal and sharpest."""
    gaps = np.array([f.gap for f in frames])
    closed = [f for f, g in zip(frames, gaps) if g <= max(CLOSED, np.percentile(gaps, 10))]
    sharp = np.median([f.sharpness for f in closed])
    return min(closed, key=lambda f: abs(f.yaw) + abs(f.pitch) + (10.0 if f.sharpness < sharp else 0.0))


def coverage(frames: list[TrackedFrame]) -> dict[str, dict]:
    """Frames per mouth shape the renderer needs, whether the clip covers it, and advice if not."""
    funnel = MOUTH_BLENDSHAPES.index("mouthFunnel"), MOUTH_BLENDSHAPES.index("mouthPucker")
    width = float(np.median([f.half_width for f in frames]))
    tests = {
        "wide open": lambda f: f.gap >= WIDE_OPEN,
        "rounded": lambda f: float(f.key[funnel[0]] + f.key[funnel[1]]) >= ROUNDED or f.half_width <= NARROW * width,
        "closed": lambda f: f.gap <= CLOSED,
        "teeth showing": lambda f: f.teeth >= TEETH,
    }
    report = {}
    for name, test in tests.items():
        n = sum(1 for f in frames if test(f))
        report[name] = {"frames": n, "covered": n >= COVERED, **({} if n >= COVERED else {"advice": ADVICE[name]})}
    return report


def aperture_range(frames: list[TrackedFrame]) -> dict[str, float]:
    """The person's inner-lip gaps (face heights) and how far they open per unit of MediaPipe's
    jawOpen − mouthClose (a least-squares slope): the renderer opens their mouth as they do."""
    gaps = np.array([f.gap for f in frames])
    jaw = np.array(
        [f.key[MOUTH_BLENDSHAPES.index("jawOpen")] - f.key[MOUTH_BLENDSHAPES.index("mouthClose")] for f in frames]
    )
    used = jaw > 0.05
    slope = float((jaw[used] @ gaps[used]) / max(float(jaw[used] @ jaw[used]), 1e-6)) if used.sum() >= 8 else None
    spread = {
        name: round(float(np.percentile(gaps, q)), 4)
        for name, q in (("p5", 5), ("median", 50), ("p95", 95), ("max", 100))
    }
    return {**spread, **({"per_jaw_open": round(slope, 4)} if slope is not None else {})}


def write_enrollment(
    out: Path, enrollment: Enrollment, bank: Bank, used: list[TrackedFrame], consent: str, holdout: float = 0.0
) -> dict:
    """The face pack `out` (`face.pack`): the bank, the rest frame as the reference still, and a
    manifest of where they came from; returns the manifest."""
    rest = rest_frame(used)
    reference = next(image for _, _, image in read_clip(enrollment.clip, rest.index, rest.index + 1))
    manifest = {
        "source_clip": enrollment.clip.name,
        "source_clip_sha256": sha256_of(enrollment.clip),
        "frames_total": enrollment.frames,
        "frames_used": len(used),
        "frames_rejected": enrollment.rejected,
        "holdout": holdout,
        "exemplars": len(bank.keys),
        "reference_frame": rest.index,
        "teeth_proxy_frames": [f.index for f in teeth_proxy(used)],
        "rest_pose": {name: round(float(rest.key[i]), 4) for i, name in enumerate(MOUTH_BLENDSHAPES)},
        "aperture_range": aperture_range(used),
        "coverage": coverage(used),
        "consent": consent,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "sound": "none stored",
    }
    return write_face_pack(out, manifest, reference, bank)


def coverage_text(manifest: dict) -> str:
    lines = []
    for name, c in manifest["coverage"].items():
        lines.append(f"  {name:14s} {c['frames']:5d} frames  " + ("ok" if c["covered"] else f"MISSING: {c['advice']}"))
    if not all(c["covered"] for c in manifest["coverage"].values()):
        lines.append(
            f"  the script {SCRIPT.name} (in calibration/) covers every shape: record it again reading it aloud"
        )
    return "\n".join(lines)


def held_out(count: int, fps: float, holdout: float, holdout_at: float | None) -> tuple[range, range]:
    """(held-out frames, frames kept out of the bank): `holdout` of the clip from `holdout_at`
    (default: its end), the bank also leaving out a second each side (neighbours look alike)."""
    start = int(round(count * (1.0 - holdout if holdout_at is None else holdout_at)))
    stop = min(start + int(round(count * holdout)), count)
    guard = int(round(fps)) if holdout > 0 else 0
    return range(start, stop), range(max(start - guard, 0), min(stop + guard, count))


def enroll(
    clip: Path,
    out: Path,
    consent: str,
    model_path: str,
    holdout: float = 0.0,
    report: Path | None = None,
    holdout_at: float | None = None,
    progress: bool = True,
) -> dict:
    """Enroll `clip` into the face pack `out`; with `holdout`, leave that share of the clip (its
    end, or from `holdout_at`) out of the bank and, with `report`, score re-synthesising it
    (`firmware_app.face.reenact`)."""
    if not consent or not consent.strip():
        raise UsageError(
            "a face pack is a likeness of a real person and enroll needs their consent statement",
            'add --consent "I, NAME, agree that this clip of me is used to animate my face on DATE for PURPOSE"',
        )
    if not 0.0 <= holdout <= 0.5:
        raise UsageError(
            f"--holdout {holdout} is outside 0 … 0.5", "give the share of the clip kept for scoring, e.g. --holdout 0.2"
        )
    if holdout_at is not None and not 0.0 <= holdout_at <= 1.0 - holdout:
        raise UsageError(
            f"--holdout-at {holdout_at} leaves no room for --holdout {holdout}",
            "give a start between 0 and 1 − holdout",
        )
    if report is not None and holdout <= 0:
        raise UsageError("--report scores held-out frames, but --holdout is 0", "add --holdout 0.2")
    log.info("enroll %s; consent: %s", clip, consent)
    count, fps, _ = clip_info(clip)
    held, excluded = held_out(count, fps, holdout, holdout_at)
    enrollment = track_clip(clip, model_path, progress=progress)
    used = [f for f in enrollment.kept if f.index not in excluded]
    bank = build_bank(used, enrollment.resolution)
    manifest = write_enrollment(out, enrollment, bank, used, consent.strip(), holdout)
    manifest["summary"] = enrollment.summary()
    if report is not None:
        manifest["report"] = score_holdout(clip, out, [f for f in enrollment.kept if f.index in held], report, progress)
    return manifest


def enroll_command(
    clip: Path,
    out: Path,
    consent: str | None,
    model_path: str,
    holdout: float,
    report: Path | None,
    holdout_at: float | None,
) -> str:
    """`ventriloquist enroll`: enroll, then say what was kept, what the clip lacks and, with a
    report, how the bank scored on the held-out frames."""
    manifest = enroll(clip, out, consent or "", model_path, holdout, report, holdout_at)
    lines = [
        f"wrote {out}: {manifest['exemplars']} mouth exemplars from {manifest['frames_used']} frames; "
        f"{manifest['summary']}",
        "coverage:",
        coverage_text(manifest),
    ]
    ap = manifest["aperture_range"]
    lines.append(f"aperture (inner-lip gap, face heights): median {ap['median']}, 95 % {ap['p95']}, max {ap['max']}")
    if "report" in manifest:
        lines += [
            f"held-out scores (also in {report}/report.json, contact sheet {report}/sheet.png):",
            table(manifest["report"]),
        ]
    return "\n".join(lines)
