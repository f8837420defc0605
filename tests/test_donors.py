"""The donor library of real mouths: what ships, how a donor is chosen and fitted to a face."""

import numpy as np

from firmware_app.face.donors import LIBRARY, load_library
from firmware_app.render.donors import fit_textures, from_lab, library_mouth, to_lab


def test_the_shipped_library_has_several_licensed_donors() -> None:
    donors = load_library()
    assert len(donors) >= 2
    assert all(d.licence and d.attribution and d.origin for d in donors)
    assert LIBRARY.stat().st_size < 3_000_000  # small enough to ship


def test_a_clips_own_person_can_be_left_out() -> None:
    names = {d.identity for d in load_library()}
    left_out = next(iter(names))
    assert left_out not in {d.identity for d in load_library(exclude=(left_out,))}
    assert library_mouth(exclude=(left_out,)) is not None


def test_fitted_donor_is_never_brighter_than_the_face_and_grey_on_a_grey_face() -> None:
    donor = load_library()[0]
    grey_lips, grey_skin = np.array([90.0, 90.0, 90.0]), np.array([130.0, 130.0, 130.0])
    fitted = fit_textures(donor, grey_lips, grey_skin)
    lab = to_lab(fitted.astype(np.float32))
    assert lab[..., 0].max() <= to_lab(grey_skin)[0] + 1.0
    assert np.abs(lab[..., 1:]).max() < 4.0  # no colour on a grey photo


def test_a_single_photo_gets_the_donors_by_default_and_the_drawn_interior_when_asked() -> None:
    from firmware_app.config import DisclosureSettings, RendererSettings
    from firmware_app.render import Renderer
    from firmware_app.render.donors import DonorMouth
    from firmware_app.render.interior import PhotoMouth
    from firmware_app.render.live_bank import LiveBank

    source = Renderer(RendererSettings(), DisclosureSettings()).source
    assert isinstance(source, LiveBank) and isinstance(source.fallback, DonorMouth)  # a camera's visitor banked first
    assert isinstance(Renderer(RendererSettings(live_bank=False), DisclosureSettings()).source, DonorMouth)
    drawn = RendererSettings(donors=False, live_bank=False)
    assert isinstance(Renderer(drawn, DisclosureSettings()).source, PhotoMouth)


def test_a_donors_teeth_and_cavity_take_the_faces_light_not_its_lip_colour() -> None:
    """A face lit as the donor was (same skin) but whose lips are another hue (a varnished
    painting's, yellower than any donor's) keeps the donor's own cavity and teeth: following the
    lips turned them olive."""
    donor = load_library()[0]
    d_lips = to_lab(donor.bank.lips)
    chroma = float(np.linalg.norm(d_lips[1:]))
    yellow_lips = np.array([d_lips[0], chroma * 0.3, chroma * 0.95], np.float32)  # same lightness and chroma
    fitted = to_lab(fit_textures(donor, from_lab(yellow_lips), donor.skin).astype(np.float32))
    own = to_lab(donor.bank.textures.astype(np.float32))
    inside = own[..., 0] < d_lips[0] * 0.8  # the cavity and shadowed teeth, darker than the lips

    def hue(lab: np.ndarray) -> float:
        return float(np.degrees(np.arctan2(np.median(lab[..., 2]), np.median(lab[..., 1]))))

    assert abs(hue(fitted[inside]) - hue(own[inside])) < 10.0, (hue(fitted[inside]), hue(own[inside]))
