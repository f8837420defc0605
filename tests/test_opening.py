"""Every face opens like a real talker (`render.opening`): on the bundled speech, each identity's
most open 5 % of frames reaches an inner-lip gap of 0.07 face heights, re-measured from the
rendered pixels (`calibration.opening`). The photos in `../shared/faces` skip where absent."""

from __future__ import annotations

import numpy as np
import pytest

from calibration.fidelity import Measurer
from calibration.identities import IDENTITIES, SHARED_FACES, load_identities, speech_track
from calibration.opening import GAP_TARGET, speech_gaps, top_gap
from firmware_app.config import DisclosureSettings, RendererSettings
from firmware_app.frames import MouthShape, VideoFrame
from firmware_app.render import Renderer
from firmware_app.render.opening import MAX_SCALE

# the faces that read narrowest without the scale (closed thin lips, a painting, a small grey photo)
NARROW = ("biden", "mona_lisa", "takeo_glasses", "three_quarter")


@pytest.fixture(scope="module")
def images():
    return load_identities()


@pytest.fixture(scope="module")
def track():
    return speech_track()


@pytest.mark.parametrize("name", ["portrait", *NARROW])
def test_every_face_opens_like_a_real_talker(images, track, name):
    if name not in images:
        pytest.skip(f"{SHARED_FACES / IDENTITIES[name][0]} is absent (the shared faces folder, see its SOURCES.md)")
    with Measurer() as measurer:
        face = measurer.face(images[name])
        gaps = speech_gaps(images[name], face, track, measurer, step=4)
    assert len(gaps) >= 70 and top_gap(gaps) >= GAP_TARGET, (name, top_gap(gaps))


def test_the_scale_is_probed_once_per_face_and_bounded(images):
    image = images["portrait"]
    with Measurer() as measurer:
        face = measurer.face(image)
        calls = []

        def measure(drawn):
            calls.append(drawn)
            return measurer.face(drawn)

        renderer = Renderer(RendererSettings(), DisclosureSettings(enabled=False))
        renderer.measure = measure
        shape = MouthShape(0.0, {"jawOpen": 0.5})
        for i in range(6):  # a still: its first frame counts as moving, the rest as still
            renderer.render(VideoFrame(image, i / 25, i, still=i > 0), face, shape)
    assert len(calls) == 2  # the first frame, and once more when it became still (own teeth may show)
    assert 1.0 <= renderer.opening_scale <= MAX_SCALE
    lost = Renderer(RendererSettings(), DisclosureSettings(enabled=False))
    lost.measure = lambda drawn: None  # the render not found again: nothing known, nothing changes
    lost.render(VideoFrame(image, 0.0, 0), face, shape)
    assert lost.opening_scale == 1.0 and np.isfinite(lost.opening_scale)
