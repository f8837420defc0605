"""A/V sync (`runners.avsync`): the picture waits for a late voice, the voice's delay follows the
picture's natural delay and never drops below its floor, and the offset between them is read.
The delay line is the real one, driven in-process the way PortAudio drives it."""

from __future__ import annotations

import time

import numpy as np
import pytest

from firmware_app.audio.passthrough import VoicePassthrough, ring
from firmware_app.audio.passthrough import line as passthrough_line
from firmware_app.frames import SAMPLE_RATE, AudioBlock
from firmware_app.runners.avsync import FOLLOW_EVERY_S, FOLLOW_STEP_S, AVSync, DelayFollower, PictureHold
from firmware_app.runners.metrics import SyncReading
from tests.test_passthrough import pull, starve_once


def steady_line(delay_s: float = 0.05, follow: bool = True) -> VoicePassthrough:
    """A line that has played 200 ms of voice, each block arriving just before the device asks."""
    line = VoicePassthrough("default", delay_s=delay_s, follow=follow)
    for i in range(20):
        line.write(AudioBlock(np.zeros(160, np.float32), i * 0.01))
        pull(line, 160)
        time.sleep(0.01)
    return line


def wanted_s(line: VoicePassthrough) -> float:
    return int(line.line.ctl[ring.WANTED]) / SAMPLE_RATE


@pytest.mark.parametrize("trim", [0.0, 0.05])
def test_the_picture_waits_steadily_for_a_later_voice(trim):
    """The voice plays 170 ms after capture while the picture could show its frames after 70 ms:
    frames wait so each lands with its sound. The wait settles once and stays (a wait steered by
    the picture's own latency median swung between 0 and 300 ms), and the voice is asked to follow
    the picture's natural delay, not the held one (else the two would chase each other upwards)."""
    from types import SimpleNamespace

    fps, lag, finish, play = 30.0, 0.070, 0.020, 0.170
    line = SimpleNamespace(follow=True, play_delay_s=play, trim_s=trim)  # trim: the voice that much after the picture
    av_offset_ms = 0.0
    hold, holds, latencies = PictureHold(line, fps), [], []
    for _ in range(300):  # ten seconds of frames, each one shown as soon as it may be
        now = time.monotonic()
        shown_until = hold.shown_until(now - lag, now - 0.01, av_offset_ms, now)
        latency = (now - shown_until) + finish
        hold.shown(now, now + finish)
        latencies.append(latency)
        av_offset_ms = (play - (np.median(latencies[-90:]) + 0.5 / fps)) * 1000
        holds.append(hold.hold_s)
    steady = np.array(holds[150:])
    assert np.ptp(steady) < 0.005, np.ptp(steady)
    assert abs(av_offset_ms - 1000 * trim) < 5, av_offset_ms
    assert abs(hold.natural_delay_s() - (lag + finish + 0.5 / fps)) < 0.005


def test_a_voice_far_from_the_picture_is_moved_at_once_a_near_one_a_few_ms_at_a_time():
    line = steady_line(0.05)
    follower, now = DelayFollower(line), time.monotonic()
    playing = line.play_delay_s  # measured: 50 ms and what the sleeps between the callbacks added
    assert 0.05 <= playing < 0.15
    follower.follow(playing + 0.2, now)  # the picture shows 200 ms after the voice plays
    assert wanted_s(line) == pytest.approx(0.2, abs=0.002)
    line.line.ctl[ring.WANTED] = 0
    follower.follow(playing + 0.01, now + FOLLOW_EVERY_S / 2)  # asked again too soon: nothing
    assert wanted_s(line) == 0
    follower.follow(playing + 0.01, now + FOLLOW_EVERY_S)  # 10 ms off: a step at a time
    assert wanted_s(line) == pytest.approx(FOLLOW_STEP_S, abs=1 / SAMPLE_RATE)
    follower.follow(playing + 0.001, now + 2 * FOLLOW_EVERY_S)  # within the dead band: left alone
    assert wanted_s(line) == pytest.approx(FOLLOW_STEP_S, abs=1 / SAMPLE_RATE)


def test_a_move_is_measured_before_the_delay_is_judged_again():
    line = steady_line(0.05)
    follower, now = DelayFollower(line), time.monotonic()
    follower.follow(line.play_delay_s + 0.2, now)
    assert wanted_s(line) > 0.1
    pull(line, 160)  # silence: the line makes the move now
    assert wanted_s(line) == 0 and not line.settled
    follower.follow(0.5, now + FOLLOW_EVERY_S)
    assert wanted_s(line) == 0  # the move is not measured yet: asking again would overshoot
    for _ in range(passthrough_line.SETTLED_CALLBACKS):
        pull(line, 160)
    assert line.settled


def test_the_voice_never_plays_earlier_than_its_floor_allows(monkeypatch):
    monkeypatch.setattr(passthrough_line, "SETTLE_S", 0.0)
    line = VoicePassthrough("default", delay_s=0.05, follow=True)
    starve_once(line)  # the voice thread was starved for 120 ms
    follower = DelayFollower(line)
    follower.follow(0.01, time.monotonic())  # the picture alone would want the voice 10 ms after capture
    assert line.floor_s > 0.12
    assert wanted_s(line) == pytest.approx(line.floor_s - line.play_delay_s, abs=0.002)


def test_a_fixed_delay_is_never_moved_but_still_measured(monkeypatch):
    monkeypatch.setattr(passthrough_line, "SETTLE_S", 0.0)
    line = VoicePassthrough("default", delay_s=0.05, follow=False)
    starve_once(line)
    line.floor_s = 0.0
    DelayFollower(line).follow(0.3, time.monotonic())
    assert wanted_s(line) == 0 and line.floor_s > 0.12


def test_without_a_passthrough_nothing_waits_and_there_is_no_offset():
    reading = SyncReading()
    sync = AVSync(None, 30.0, reading)
    now = time.monotonic()
    assert sync.shown_until(now - 0.05, now, now) == now - 0.05
    assert sync.shown_until(None, now, now) is None  # no voice yet: any frame may show
    sync.frame_shown(now, now + 0.02, [80.0] * 10)
    assert reading == SyncReading()


def test_the_offset_read_is_the_voices_delay_minus_the_pictures():
    line = steady_line(0.12)
    reading = SyncReading()
    sync, now = AVSync(line, 30.0, reading), time.monotonic()
    sync.frame_shown(now, now + 0.02, [70.0] * 30)  # one frame: it stays half a nominal frame on screen
    assert reading.passthrough_delay_ms == pytest.approx(1000 * line.play_delay_s, abs=1.0)
    assert reading.av_offset_ms == pytest.approx(1000 * line.play_delay_s - 70.0 - 500 / 30, abs=1.0)
