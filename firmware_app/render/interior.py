"""What shows between parted lips: the source of mouth pixels.

`render.mouth` opens the jaw and hands the opening to a `MouthSource`, which paints it. The
opening is described in the mouth's own frame (u along the lips from the face's centre line, v
down the face, pixels), with the edges of the upper and lower lips at each u, so a source never
needs to know about the warp. `PhotoMouth` is the drawn source (the fallback where the donor
library is off or missing): a cavity shaded from the lips' own shadow at the edges to dark at the
back (a slit dark, a wide-open mouth lit red-brown inside), upper teeth hanging from the upper lip (rigid
with the skull), lower teeth on the jaw when it opens wide, and a tongue that follows the visemes,
all coloured from this face's lips and light and drawn at full resolution with one-pixel edges
(no blurred patch). A bank of real mouth images (enrolled from a clip) plugs in as another
`MouthSource`: pick the image nearest the commanded shape and fit it to the same opening.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Protocol

import numpy as np

from firmware_app.render.rig import smoothstep

# Tooth boundaries along the arch, as shares of the inner mouth's half width: the arch recedes,
# so the teeth look narrower toward the sides.
UPPER_TOOTH_EDGES = (0.0, 0.30, 0.54, 0.72)
LOWER_TOOTH_EDGES = (0.0, 0.17, 0.34, 0.50)
UPPER_TEETH_LENGTH = 0.09  # visible crown, × the inner mouth width
LOWER_TEETH_LENGTH = 0.04
UPPER_ARCH = 0.80  # teeth show out to this share of the half width
LOWER_ARCH = 0.5
WIDE_OPEN = (0.045, 0.10)  # opening (face heights) over which the lower teeth come into view
GRAIN_TILE = 128
TONGUE = np.array([0.62, 0.64, 0.78], np.float32)  # × the lips' B G R: a little redder and darker
# the tongue's body lies back in the mouth, out of the lips' light: drawn this much darker (not its
# tip between the teeth)
TONGUE_DEPTH = 0.65
# Inside, a mouth is lit by what comes in between the lips: a slit lets in none; open wide
# (WIDE_OPEN) its back is dark red-brown and its tongue lit (a flat near-black read as painted).
CAVITY_BACK = {"slit": (0.4, 0.12), "wide": (0.3, 0.26)}  # × (renderer.interior_color, the lips' colour)
TONGUE_LIGHT = (0.75, 1.25)  # × the tongue's shade, slit → wide


@dataclass(frozen=True)
class Articulation:
    """What the mouth model says about the inside of the mouth, beyond how far it is open."""

    tongue_up: float = 0.0  # tip raised to the teeth (TH, DD, nn)
    tongue_out: float = 0.0  # tip between the teeth, in front of the upper ones (TH)
    tongue_low: float = 0.0  # lying low in the mouth (aa)

    @classmethod
    def of(cls, weights: dict[str, float]) -> Articulation:
        """From the mouth model's viseme probabilities (`viseme_TH`, …); none given: a neutral tongue."""

        def v(name: str) -> float:
            return float(weights.get(f"viseme_{name}", 0.0))

        return cls(
            float(np.clip(v("TH") + v("DD") + v("nn"), 0, 1)),
            float(np.clip(v("TH"), 0, 1)),
            float(np.clip(v("aa") + 0.5 * v("oh"), 0, 1)),
        )


@dataclass(frozen=True)
class Opening:
    """The space between the parted lips, in the mouth frame; every array has the box's shape."""

    u: np.ndarray
    v: np.ndarray
    lip_top: np.ndarray  # the upper lip's inner edge (teeth hang from it)
    top: np.ndarray  # where painting starts (below the photo's own teeth when they are kept)
    bottom: np.ndarray  # the lower lip's inner edge (lower teeth stand on it)
    half_width: float  # inner lip corners
    opening: float  # commanded gap at the centre, face heights


@dataclass(frozen=True)
class FaceLight:
    """Colours of this face (B G R, float): everything painted inside the mouth is mixed from them."""

    lips: np.ndarray
    skin: np.ndarray
    back: np.ndarray  # the configured colour of the mouth's depths (`renderer.interior_color`)
    grain: float  # the picture's fine texture (std of its high frequencies), 0-255

    @cached_property
    def teeth(self) -> np.ndarray:
        """Off-white in this face's light: as bright as the skin allows, tinted like it (grey on a
        grey photo), a little warmer than paper. Worked out once per picture (a still's light is
        read once, see `render.mouth.photo_facts`)."""
        skin = np.maximum(self.skin, 1.0)
        colourful = min(float((skin.max() - skin.min()) / skin.max()) * 4.0, 1.0)  # 0 on a grey photo
        tint = (skin / skin.mean()) ** 0.4 * np.array([0.94, 1.0, 1.03], np.float32) ** colourful
        level = np.clip(skin.mean() * 1.25, 110.0, 215.0)
        return np.minimum(tint * level, 240.0).astype(np.float32)


class MouthSource(Protocol):
    """Anything that can fill an opening with mouth pixels."""

    def paint(self, opening: Opening, light: FaceLight, articulation: Articulation) -> np.ndarray:
        """H x W x 3 float32 B G R pixels for the opening's box (only the inside is shown)."""
        ...


class PhotoMouth:
    """The single-photo mouth: shaded cavity, teeth and tongue drawn to fit the opening."""

    def __init__(self, seed: int = 7) -> None:
        self._grain = grain_tile(seed)

    def paint(self, opening: Opening, light: FaceLight, articulation: Articulation) -> np.ndarray:
        o = opening
        gap = np.maximum(o.bottom - o.top, 1e-3)
        across = np.clip(np.abs(o.u) / o.half_width, 0.0, 1.0)
        wide = smoothstep(*WIDE_OPEN, o.opening)
        out = _cavity(o, gap, across, light, wide)
        tongue_alpha, tongue_shade = _tongue(o, gap, across, articulation, wide)
        tongue = light.lips * TONGUE * tongue_shade[..., None]
        out = _over(out, tongue, tongue_alpha)
        teeth = light.teeth
        if wide > 0:
            alpha, shade = _teeth(
                o.u, o.bottom - o.v, o.half_width, LOWER_TOOTH_EDGES, LOWER_ARCH, LOWER_TEETH_LENGTH * wide, gap, 0.1
            )
            out = _over(out, teeth * 0.86 * shade[..., None], alpha)
        alpha, shade = _teeth(
            o.u, o.v - o.lip_top, o.half_width, UPPER_TOOTH_EDGES, UPPER_ARCH, UPPER_TEETH_LENGTH, o.bottom - o.lip_top
        )
        alpha = alpha * (o.top <= o.lip_top + 0.5)  # the photo's own upper teeth are showing instead
        out = _over(out, teeth * shade[..., None], alpha)
        if articulation.tongue_out > 0:  # the tip shows between the teeth, in front of the upper ones
            out = _over(out, light.lips * TONGUE * 1.1, _tongue_tip(o, articulation.tongue_out))
        return with_grain(out, self._grain, light.grain)


def grain_tile(seed: int = 7) -> np.ndarray:
    """A fixed tile of unit noise: painted pixels get the picture's grain, the same every frame (no flicker)."""
    return np.random.default_rng(seed).standard_normal((GRAIN_TILE, GRAIN_TILE)).astype(np.float32)


def with_grain(out: np.ndarray, tile: np.ndarray, amount: float) -> np.ndarray:
    """`out` with `amount` (0-255 std) of the tile's noise, as the picture's own fine texture."""
    h, w = out.shape[:2]
    grain = np.resize(tile, (h, w)) if h > tile.shape[0] or w > tile.shape[1] else tile[:h, :w]
    return out + (amount * grain)[..., None]


def _cavity(o: Opening, gap: np.ndarray, across: np.ndarray, light: FaceLight, wide: float) -> np.ndarray:
    """Dark at the back, the lips' own shadow where it meets them: never a flat black. A slit
    between the lips lets in no light; a mouth open wide is lit inside (a real one's back is
    dark red-brown, not black)."""
    edge = np.minimum(np.minimum(o.v - o.lip_top, o.bottom - o.v), (o.half_width - np.abs(o.u)) * 0.6)
    depth = smoothstep(0.0, 0.5 * np.maximum(gap, 6.0), edge) * (1.0 - 0.5 * across**2)
    slit, lit = (share * light.back + lips * light.lips + 3.0 for share, lips in CAVITY_BACK.values())
    shadow, back = light.lips * 0.42, slit + (lit - slit) * wide
    return shadow + (back - shadow) * depth[..., None]


def _tongue(
    o: Opening, gap: np.ndarray, across: np.ndarray, a: Articulation, wide: float
) -> tuple[np.ndarray, np.ndarray]:
    """(alpha, shade): a dome rising from behind the lower teeth (its top rounder and flatter than
    the lower lip's curve), lower on aa, its tip lifted to the upper teeth on TH/DD/nn; lit from
    the front with a wet highlight along its top, darker toward the back and the sides."""
    middle = np.unravel_index(int(np.argmin(np.abs(o.u))), o.u.shape)
    bottom, room = float(o.bottom[middle]), float(gap[middle])
    low = 0.14 * a.tongue_low * (1.0 - 0.5 * wide)  # lying low on aa, yet in view above the lower teeth when wide
    rise = 0.42 - low + 0.45 * a.tongue_up * np.exp(-((o.u / (0.4 * o.half_width)) ** 2))
    dome = np.sqrt(np.clip(1.0 - (o.u / (0.7 * o.half_width)) ** 2, 0.0, 1.0))
    surface = bottom - room * rise * dome + 0.4 * (o.bottom - bottom)
    height = np.maximum(o.bottom - surface, 0.0)
    alpha = np.clip(o.v - surface + 0.5, 0.0, 1.0) * (height > 1.0) * np.clip(gap / 4.0 - 0.25, 0.0, 1.0)
    below = np.clip((o.v - surface) / max(room * 0.4, 1.0), 0.0, 1.0)
    highlight = 0.25 * np.clip(1.0 - below * 4.0, 0.0, 1.0)
    lit = TONGUE_LIGHT[0] + (TONGUE_LIGHT[1] - TONGUE_LIGHT[0]) * wide
    shade = TONGUE_DEPTH * (0.95 + highlight - 0.3 * below) * (1.0 - 0.45 * across**2) * lit
    return alpha, shade


def _tongue_tip(o: Opening, out: float) -> np.ndarray:
    """Alpha of the tip pushed between the teeth: a rounded lobe in the middle, from the lower lip
    up over the lower half of the upper teeth."""
    width = 0.32 * o.half_width
    dome = np.sqrt(np.clip(1.0 - (o.u / width) ** 2, 0.0, 1.0))
    top = o.bottom - (o.bottom - (o.lip_top + 0.5 * (o.bottom - o.lip_top))) * dome
    return np.clip(o.v - top + 0.5, 0.0, 1.0) * (dome > 0) * float(np.clip(out, 0.0, 1.0))


def _teeth(
    u: np.ndarray,
    depth: np.ndarray,
    half_width: float,
    edges: tuple[float, ...],
    arch: float,
    length: float,
    room: np.ndarray,
    gaps: float = 0.18,
) -> tuple[np.ndarray, np.ndarray]:
    """(alpha, shade) of a row of teeth growing `depth` pixels from the lip that holds them.

    Crowns are longest in the middle and shorter along the receding arch, their tips rounded, the
    gaps between them a faint shadow, the part next to the lip shaded by it."""
    across = np.abs(u) / half_width
    crown = length * 2 * half_width * np.clip(1.0 - (across / arch) ** 2, 0.0, 1.0) ** 0.35
    crown = np.minimum(crown, 0.5 * np.maximum(room, 0.0) + 1.0)
    bounds = np.array(edges, np.float32)
    nearest = np.abs(across - bounds[0])
    for bound in bounds[1:]:
        np.minimum(nearest, np.abs(across - bound), out=nearest)
    nearest *= half_width  # pixels to the closest tooth gap
    width = half_width * (bounds[1] - bounds[0])
    tip = crown * (1.0 - 0.12 * (1.0 - np.clip(nearest / (0.5 * width), 0.0, 1.0)) ** 2)  # rounded corners
    alpha = np.clip(tip - depth + 0.5, 0.0, 1.0) * (depth > -0.5) * (across < arch)
    seam = 1.0 - gaps * np.clip(1.0 - nearest / 0.9, 0.0, 1.0) * smoothstep(0.0, 0.5 * np.maximum(crown, 1.0), depth)
    shade = (
        seam
        * (0.66 + 0.34 * smoothstep(0.0, 0.45 * np.maximum(crown, 1.0), depth))
        * (1.0 - 0.4 * (across / arch) ** 2)
    )
    return alpha, shade


def _over(under: np.ndarray, colour: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha[..., None]
    return under * (1.0 - a) + colour * a
