"""The donor library of real mouths: what ships, how a donor is chosen and fitted to a face."""

import numpy as np

from firmware_app.face.donors import LIBRARY, load_library
from firmware_app.render.donors import fit_textures, library_mouth, to_lab


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
