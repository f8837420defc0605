"""Mirror mode banks the visitor (`render.live_bank`): on the real talking clip the mouth shown is
soon the visitor's own, the bank stays bounded and in memory, and it forgets a visitor who left
or was replaced. The clip in `../shared/faces` skips where absent."""

from __future__ import annotations

import os

import pytest

from calibration.fidelity import Measurer
from calibration.identities import MIRROR_CLIP, SHARED_FACES, load_identities, speech_track
from calibration.live_bank import measure
from firmware_app.frames import Face, VideoFrame
from firmware_app.render.interior import PhotoMouth
from firmware_app.render.live_bank import LOST_S, MAX_BYTES, MAX_EXEMPLARS, LiveBank

OWN_SHARE = 0.8  # the target: of the open-mouth frames shown after 5 s in view


def test_after_five_seconds_the_mouth_shown_is_the_visitors_own(tmp_path):
    clip = SHARED_FACES / MIRROR_CLIP
    if not clip.is_file():
        pytest.skip(f"{clip} is absent (the shared faces folder, see its SOURCES.md)")
    before = os.getcwd()
    os.chdir(tmp_path)  # whatever the bank might write would land here
    try:
        result = measure(clip, speech_track(), seconds=9.0, after=5.0)
    finally:
        os.chdir(before)
    assert result.open_frames >= 30, result
    assert result.own_share >= OWN_SHARE, result
    assert 0 < result.own_exemplars <= MAX_EXEMPLARS and result.own_bytes <= MAX_BYTES, result
    assert not list(tmp_path.iterdir())  # memory only


@pytest.fixture(scope="module")
def portrait():
    image = load_identities()["portrait"]  # its mouth is open: a camera showing it is banked
    with Measurer() as measurer:
        return image, measurer.face(image)


def test_the_bank_forgets_a_visitor_gone_or_replaced(portrait):
    image, face = portrait
    bank = LiveBank(PhotoMouth())
    for i in range(2):  # the first frame has no frame before to tell that the lips are steady
        bank.observe(VideoFrame(image, i / 25, i), face)
    assert bank.own_exemplars == 1
    bank.observe(VideoFrame(image, 1.0, 25), None)  # a moment out of view: kept
    assert bank.own_exemplars == 1
    bank.observe(VideoFrame(image, 1.0 + LOST_S + 0.1, 200), None)  # gone for a few seconds
    assert bank.own_exemplars == 0
    bank.observe(VideoFrame(image, 10.0, 250), face)
    assert bank.own_exemplars == 1
    other = face.landmarks.copy()
    centre = other[:, :2].mean(axis=0)
    other[:, 0] = centre[0] + (other[:, 0] - centre[0]) * 1.25  # a wider face: someone else
    bank.observe(VideoFrame(image, 10.04, 251), Face(other, face.blendshapes, face.pose))
    assert bank.own_exemplars == 0


def test_a_still_is_never_banked(portrait):
    image, face = portrait
    bank = LiveBank(PhotoMouth())
    for i in range(1, 6):
        bank.observe(VideoFrame(image, i / 25, i, still=True), face)
    assert bank.own_exemplars == 0


def test_metrics_show_the_visitors_own_exemplars(portrait):
    from prometheus_client import generate_latest

    from firmware_app.config import Settings
    from firmware_app.web.console.status import History, RecentLog, snapshot
    from firmware_app.web.server import metrics_registry
    from firmware_app.web.state import LiveState

    image, face = portrait
    bank = LiveBank(PhotoMouth())
    for i in range(2):
        bank.observe(VideoFrame(image, i / 25, i), face)
    state = LiveState(None, Settings())
    state.metrics.own_mouth.read(bank)
    text = generate_latest(metrics_registry(state)).decode()
    assert "ventriloquist_own_exemplars 1.0" in text and "ventriloquist_own_bank_bytes" in text
    assert "ventriloquist_mouth_painted_own_total" in text
    assert state.metrics.own_mouth.bytes == bank.own_bytes > 0
    assert snapshot(state, History(state), RecentLog(), 0.0)["own_exemplars"] == 1  # the console's status


def test_the_bench_times_the_renderer_with_the_live_bank():
    import re

    from firmware_app.config import Settings
    from firmware_app.tools.bench import live_bank_line

    line = live_bank_line(Settings())
    found = re.search(r"donor library ([\d.]+) ms/frame CPU .* live bank ([\d.]+) ms/frame CPU .*; (\d+) own", line)
    assert found and int(found[3]) > 0, line  # the visitor (the demo portrait talking) was banked
