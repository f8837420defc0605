"""A person's own mouth: a `MouthSource` that takes the pixels of the opening from a face pack.

A face pack (`NAME.face`, written by `ventriloquist enroll`, see `firmware_app.face.enroll`) holds a bank
of mouth exemplars of one person, each pre-merged from the clip's frames nearest one mouth shape
(the weighted median of *Synthesizing Obama*), pose-normalised: stored in the mouth's own frame
(u along the lips, v down the face, both in face heights, origin at the lip seam) with the inner
lip edges at `EDGE_S` shares of the half width. The runtime only looks up:

- the exemplars nearest the commanded shape (mouth blendshapes plus the opening's own gap
  profile) get weights, smoothed over time so the texture never jumps from one to the next;
- each is warped to the current lips: a point just below the upper lip reads the exemplar just
  below its upper lip (upper teeth rigid with the skull), one just above the lower lip reads just
  above the exemplar's lower lip (lower teeth with the jaw), the middle stretches between;
- colour-matched to the face's lips as they are lit now, then blended by the compositor
  (`render.mouth`), which also seals closures and rest on the picture's own lips: a pack's
  reference still is the person's own closed mouth.
"""

from __future__ import annotations

import io
import json
import logging
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from firmware_app.config import DisclosureSettings, RendererSettings
from firmware_app.errors import ConfigError, MediaError
from firmware_app.frames import Face, MouthShape, VideoFrame
from firmware_app.render import Renderer
from firmware_app.render.interior import Articulation, FaceLight, Opening

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
SUFFIX = ".face"
EDGE_S = np.linspace(-1.0, 1.0, 21).astype(np.float32)  # where along the inner lips the edges are stored
PATCH_U = 0.22  # the stored patch spans ± this along the lips, face heights
PATCH_V = (-0.10, 0.16)  # ... and this down the face from the lip seam
MOUTH_BLENDSHAPES = (
    "jawOpen", "mouthClose", "mouthFunnel", "mouthPucker", "mouthSmileLeft", "mouthSmileRight",
    "mouthStretchLeft", "mouthStretchRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower",
    "mouthShrugUpper", "mouthPressLeft", "mouthPressRight", "mouthLowerDownLeft", "mouthLowerDownRight",
    "mouthUpperUpLeft", "mouthUpperUpRight",
)  # fmt: skip
CROWN = 0.03  # face heights of teeth kept rigid with each lip (about a crown's visible length)
GAP_S = (-0.5, 0.0, 0.5)  # the inner-lip gap is described at these shares of the half width
NEAREST = 2  # exemplars blended per frame
SMOOTHING = 0.6  # share of the new lookup's weights taken each frame (the rest: the previous frame's)
COLOUR_GAIN = (0.75, 1.35)  # the colour match never scales a channel beyond these
# How much each viseme shows the teeth (0 none, 1 fully): with the mouth model's visemes in the
# command, exemplars showing about that much are preferred (an "E" bares them, an "oh" hides them).
VISEME_TEETH = {
    "sil": 0.0, "PP": 0.0, "FF": 0.8, "TH": 0.8, "DD": 0.7, "kk": 0.6, "CH": 0.9, "SS": 1.0,
    "nn": 0.6, "RR": 0.4, "aa": 0.7, "E": 1.0, "ih": 1.0, "oh": 0.3, "ou": 0.1,
}  # fmt: skip
TEETH_WEIGHT = 4.0  # a full mismatch in teeth makes an exemplar count as (1 + this) times as far
MODEL_BLENDSHAPES = 0.1  # what a mouth model's blendshapes count in the lookup, against the drawn opening's 1
OWN_MAX_OPEN = (0.06, 0.3)  # the person's own opening at jawOpen 1 (face heights) is kept within these


def descriptor(weights: dict[str, float], gaps: np.ndarray, half_width: float) -> np.ndarray:
    """A mouth shape as a vector: the mouth blendshapes, the inner-lip gap at `GAP_S` and the inner
    half width (both in face heights). Enrollment and lookup describe shapes the same way."""
    shapes = [float(weights.get(name, 0.0)) for name in MOUTH_BLENDSHAPES]
    return np.array([*shapes, *np.asarray(gaps, np.float32), half_width], np.float32)


def exemplar_coords(s: np.ndarray, d_top: np.ndarray, d_bot: np.ndarray, upper: np.ndarray, lower: np.ndarray, half_width: float) -> tuple[np.ndarray, np.ndarray]:
    """(u, v) in an exemplar (inner edges `upper`/`lower` at `EDGE_S`, `half_width`; face heights)
    of a point `s` half widths across, `d_top` below the upper lip's edge and `d_bot` above the
    lower's. A crown's length below the upper lip is read rigidly from below the exemplar's upper
    lip (upper teeth with the skull), a crown's length above the lower lip from above its lower lip
    (lower teeth with the jaw); only the space between stretches. Outside the opening the nearer
    lip is followed rigidly."""
    up, lo = np.interp(s, EDGE_S, upper), np.interp(s, EDGE_S, lower)
    gap_e = np.maximum(lo - up, 0.0)
    gap_c = np.maximum(d_top + d_bot, 0.0)
    crown = np.minimum(np.minimum(CROWN, 0.5 * gap_e), 0.5 * gap_c)
    between = np.clip((d_top - crown) / np.maximum(gap_c - 2 * crown, 1e-4), 0.0, 1.0)
    v = np.where(d_top <= crown, up + d_top, np.where(d_bot <= crown, lo - d_bot, up + crown + between * (gap_e - 2 * crown)))
    return (s * half_width).astype(np.float32), v.astype(np.float32)


def patch_pixels(u: np.ndarray, v: np.ndarray, resolution: float) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates in a stored patch of mouth-frame (u, v) in face heights."""
    return ((u + PATCH_U) * resolution).astype(np.float32), ((v - PATCH_V[0]) * resolution).astype(np.float32)


@dataclass(frozen=True)
class FacePack:
    """What `enroll` wrote: the manifest, the reference still and the bank."""

    path: Path
    manifest: dict
    reference: np.ndarray  # BGR uint8: the person at rest, the picture that speaks
    textures: np.ndarray  # K x H x W x 3 uint8, pose-normalised mouth exemplars
    upper: np.ndarray  # K x len(EDGE_S): inner upper lip edge, face heights
    lower: np.ndarray  # K x len(EDGE_S)
    half_width: np.ndarray  # K: inner half width, face heights
    keys: np.ndarray  # K x D descriptors
    scale: np.ndarray  # D: each descriptor dimension's spread over the clip (lookups divide by it)
    lips: np.ndarray  # B G R median lip colour of the enrolled frames
    resolution: float  # patch pixels per face height
    teeth: np.ndarray  # K: how much each exemplar shows its teeth, 0 … 1

    @property
    def consent(self) -> str:
        return str(self.manifest.get("consent", ""))


def load_face_pack(path: Path) -> FacePack:
    """Read a `.face` file; a file that is not one, or of another format version, is refused."""
    if not path.is_file():
        raise MediaError(f"the face pack {path} does not exist", "build one with `ventriloquist enroll CLIP --out NAME.face --consent \"…\"`")
    try:
        with zipfile.ZipFile(path) as pack:
            manifest = json.loads(pack.read("manifest.json"))
            reference = cv2.imdecode(np.frombuffer(pack.read("reference.png"), np.uint8), cv2.IMREAD_COLOR)
            arrays = np.load(io.BytesIO(pack.read("bank.npz")))
            bank = {name: arrays[name] for name in arrays.files}
    except (zipfile.BadZipFile, zlib.error, KeyError, ValueError, OSError) as exc:  # zlib: a damaged member
        raise MediaError(f"{path} is not a readable face pack ({exc})", "enroll the clip again with `ventriloquist enroll`") from None
    if reference is None:
        raise MediaError(f"{path} is not a readable face pack (its reference still does not decode)", "enroll the clip again with `ventriloquist enroll`")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise MediaError(
            f"{path} is a face pack of format {manifest.get('format_version')}; this version reads format {FORMAT_VERSION}",
            "enroll the clip again with this version's `ventriloquist enroll`",
        )
    if not manifest.get("consent"):
        raise MediaError(f"{path} records no consent statement", "enroll the clip again with --consent \"…\"")
    return FacePack(path, manifest, reference, bank["textures"], bank["upper"], bank["lower"], bank["half_width"], bank["keys"], bank["scale"], bank["lips"], float(bank["resolution"]), bank.get("teeth", np.zeros(len(bank["keys"]), np.float32)))


def require_disclosure(pack: FacePack, disclosure: DisclosureSettings) -> None:
    """A face pack is a real person's likeness: its video is always marked as synthetic."""
    if not disclosure.enabled:
        raise ConfigError(
            f"disclosure.enabled is false, but the face pack {pack.path.name} shows a real person (consent: "
            f"\"{pack.consent}\"); video of a real person's likeness is always marked as synthetic (EU AI Act art. 50), "
            "so the mark cannot be switched off while a face pack is in use",
            "set disclosure.enabled: true (you may change disclosure.text and disclosure.position), or use a portrait that is not a face pack",
        )


class BankMouth:
    """`MouthSource` painting the opening from a face pack's bank (see the module's docstring)."""

    def __init__(self, pack: FacePack) -> None:
        self.pack = pack
        self._keys = pack.keys / pack.scale
        # a command beyond what the clip ever showed is matched as the nearest shape it did show:
        # unclipped, a dimension the clip hardly moves (its spread tiny) outweighs all the others
        self._low, self._high = self._keys.min(axis=0), self._keys.max(axis=0)
        self._weights = np.zeros(len(pack.keys), np.float32)
        self._command: dict[str, float] = {}
        self._face_height = 1.0
        self.chosen: np.ndarray = np.zeros(0, np.intp)  # the exemplars of the last paint, for reports
        self.painted = 0  # frames whose opening the bank painted, for reports

    def command(self, face: Face | None, weights: dict[str, float]) -> None:
        """The shape wanted for the next frame and the face it is drawn on (its height sets the scale)."""
        self._command = weights
        if face is not None:
            p = face.landmarks[:, :2]
            self._face_height = max(float(np.linalg.norm(p[152] - p[10])), 1.0)

    def reset(self) -> None:
        self._weights[:] = 0.0

    def paint(self, opening: Opening, light: FaceLight, articulation: Articulation) -> np.ndarray:
        o, fh = opening, self._face_height
        s = np.clip(o.u / max(o.half_width, 1.0), -1.05, 1.05)
        chosen, share = self._lookup(self._query(o, s))
        self.painted += 1
        d_top = np.maximum(o.v - o.lip_top, 0.0) / fh
        d_bot = np.maximum(o.bottom - o.v, 0.0) / fh
        out = np.zeros((*o.u.shape, 3), np.float32)
        for k, w in zip(chosen, share):
            u, v = exemplar_coords(s, d_top, d_bot, self.pack.upper[k], self.pack.lower[k], float(self.pack.half_width[k]))
            px, py = patch_pixels(u, v, self.pack.resolution)
            out += w * cv2.remap(self.pack.textures[k], px, py, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
        gain = np.clip(light.lips / np.maximum(self.pack.lips, 1.0), *COLOUR_GAIN).astype(np.float32)
        return out * gain

    def _query(self, o: Opening, s: np.ndarray) -> np.ndarray:
        """This frame's shape: the command's blendshapes and the gap the compositor opened."""
        gap = o.bottom - o.lip_top
        gaps = []
        for target in GAP_S:
            near = np.abs(s - target) < 0.08
            gaps.append(float(gap[near].max()) / self._face_height if near.any() else 0.0)
        return descriptor(self._command, np.array(gaps), o.half_width / self._face_height) / self.pack.scale

    def _wanted_teeth(self) -> float | None:
        """How much the command's visemes show the teeth, or None without visemes."""
        weights = {name: float(self._command.get(f"viseme_{name}", 0.0)) for name in VISEME_TEETH}
        total = sum(weights.values())
        return sum(w * VISEME_TEETH[name] for name, w in weights.items()) / total if total > 0.1 else None

    def _lookup(self, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The `NEAREST` exemplars and their shares, the weights smoothed over frames."""
        squared = (self._keys - np.clip(query, self._low, self._high)) ** 2
        wanted = self._wanted_teeth()
        if wanted is None:  # a tracked face's own blendshapes (mirror, self-reenactment): all count
            d2 = squared.sum(axis=1)
        else:
            # a mouth model's command: its blendshapes are learned on other faces (their habits sit
            # tens of spreads from any of this person's), so the opening the compositor draws and the
            # visemes' teeth choose; the teeth as a factor (an added term of a few units drowned)
            blend = len(MOUTH_BLENDSHAPES)
            d2 = MODEL_BLENDSHAPES * squared[:, :blend].sum(axis=1) + squared[:, blend:].sum(axis=1)
            d2 = d2 * (1.0 + TEETH_WEIGHT * (self.pack.teeth - wanted) ** 2)
        near = np.argsort(d2)[:NEAREST]
        fresh = np.zeros_like(self._weights)
        fresh[near] = np.exp(-(d2[near] - d2[near[0]]) / max(float(d2[near[0]]), 0.25))
        fresh /= fresh.sum()
        self._weights = fresh if not self._weights.any() else SMOOTHING * fresh + (1 - SMOOTHING) * self._weights
        chosen = np.argsort(self._weights)[::-1][:NEAREST]
        chosen = chosen[self._weights[chosen] > 0.02 * self._weights[chosen[0]]]
        share = self._weights[chosen] / self._weights[chosen].sum()
        self.chosen = chosen
        return chosen, share


class BankRenderer(Renderer):
    """The renderer with its mouth taken from a face pack: each frame's command reaches the bank."""

    def __init__(self, settings: RendererSettings, disclosure: DisclosureSettings, pack: FacePack) -> None:
        require_disclosure(pack, disclosure)
        per_jaw_open = pack.manifest.get("aperture_range", {}).get("per_jaw_open")
        if per_jaw_open:  # the person's mouth opens as far as theirs did in the clip for the same jawOpen
            settings = settings.model_copy(update={"max_open": float(np.clip(per_jaw_open, *OWN_MAX_OPEN))})
        super().__init__(settings, disclosure)
        self.bank = BankMouth(pack)
        self.source = self.bank

    def render(self, frame: VideoFrame, face: Face | None, shape: MouthShape, controls: dict[str, float] | None = None) -> np.ndarray:
        self.bank.command(face if face is not None else self._last_face, {**shape.weights, **(controls or {})})
        return super().render(frame, face, shape, controls)


def face_pack_path(uri_text: str) -> Path | None:
    """The face pack a `sources.portrait` or `--face` names (`file://NAME.face`), else None."""
    from firmware_app.uri import parse_uri

    uri = parse_uri(uri_text, ("file",)) if uri_text.startswith(("file://", "bundled://")) or "://" not in uri_text else None
    return uri.path if uri is not None and uri.path.suffix.lower() == SUFFIX else None


def open_face_pack(path: Path, disclosure: DisclosureSettings) -> FacePack:
    """Load a pack for use, refuse it without the disclosure mark, and log whose likeness it is."""
    pack = load_face_pack(path)
    require_disclosure(pack, disclosure)
    m = pack.manifest
    log.info("face pack %s: %d mouth exemplars from %d frames of %s (enrolled %s); consent: %s", path.name, len(pack.keys), m.get("frames_used", 0), m.get("source_clip", "?"), m.get("date", "?"), pack.consent)
    return pack
