"""The passthrough delay line, driven the way PortAudio drives it (callbacks asking for samples), and the A/V
sync that steers it (`runners.avsync`)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest

from firmware_app.audio.passthrough import VoicePassthrough, passthrough_delay_s, ring
from firmware_app.audio.passthrough import buffer as buffer_module
from firmware_app.audio.passthrough import line as passthrough_line
from firmware_app.audio.passthrough.buffer import DeviceBuffer
from firmware_app.audio.passthrough.player import Player
from firmware_app.frames import SAMPLE_RATE, AudioBlock
from firmware_app.runners.avsync import DelayFollower


def pull(line: VoicePassthrough, frames: int) -> np.ndarray:
    out = np.full((frames, 1), 9.0, np.float32)
    line._fill(out, frames, None, None)
    return out[:, 0].copy()


def test_output_is_the_input_delayed_exactly():
    line = VoicePassthrough("default", delay_s=0.010)  # 160 samples
    assert not pull(line, 100).any()  # nothing heard before the voice starts
    voice = np.arange(1, 641, dtype=np.float32)
    for i in range(0, 640, 320):
        line.write(AudioBlock(voice[i : i + 320], i / SAMPLE_RATE))
    played = np.concatenate([pull(line, 256) for _ in range(4)])
    np.testing.assert_array_equal(played[:160], 0)
    np.testing.assert_array_equal(played[160:800], voice)
    np.testing.assert_array_equal(played[800:], 0)
    assert line.late_samples == 0


def test_a_late_block_is_waited_for_and_played_whole_not_skipped():
    """The voice thread was starved: the device wants samples that have not come. The line plays
    silence until they come, then all of them (later), and counts the wait; nothing is skipped."""
    line = VoicePassthrough("default", delay_s=0.0)
    line.write(AudioBlock(np.ones(160, np.float32), 0.0))
    head = pull(line, 480)  # the device wants up to sample 480; only 160 have come
    np.testing.assert_array_equal(head[:160], 1.0)
    np.testing.assert_array_equal(head[160:], 0.0)
    line.write(AudioBlock(np.full(160, 2.0, np.float32), 160 / SAMPLE_RATE))  # late, but not lost
    line.write(AudioBlock(np.full(160, 3.0, np.float32), 320 / SAMPLE_RATE))
    np.testing.assert_array_equal(pull(line, 320), np.repeat([2.0, 3.0], 160))
    assert line.late_samples == 0
    assert line.report() == {"skipped_ms": 0.0, "waited_ms": 20.0, "stalls": 1, "underflows": 0}


def test_a_gap_in_the_input_is_not_waited_through():
    """A reopened source continues the clock with a gap: that gap is silence, not voice, and an
    idle line jumps over it instead of playing it (which would make the voice needlessly late)."""
    line = VoicePassthrough("default", delay_s=0.0)
    line.write(AudioBlock(np.ones(160, np.float32), 0.0))
    pull(line, 320)  # everything played; the source goes away
    line.write(AudioBlock(np.full(160, 5.0, np.float32), 16000 / SAMPLE_RATE))  # back, a second later
    np.testing.assert_array_equal(pull(line, 160), 5.0)
    assert line.report()["stalls"] == 0 and line.late_samples == 0


def starve_once(line: VoicePassthrough) -> None:
    """A device pulling 10 ms every 10 ms; the voice comes on time, then none for 120 ms, then
    all that was late at once."""
    block = np.zeros(160, np.float32)
    for i in range(20):
        line.write(AudioBlock(block, i * 0.01))
        pull(line, 160)
        time.sleep(0.01)
    for _ in range(12):  # the voice thread starves
        pull(line, 160)
        time.sleep(0.01)
    for i in range(20, 33):
        line.write(AudioBlock(block, i * 0.01))
    pull(line, 160)
    line.refresh()


def test_the_floor_covers_the_lateness_seen_after_start_up_and_the_ring_stays_bounded(monkeypatch):
    line = VoicePassthrough("default", delay_s=0.05)
    starve_once(line)  # during start-up (model warm-up): not a reason to delay the voice for long
    assert line.floor_s < 0.1
    monkeypatch.setattr(passthrough_line, "SETTLE_S", 0.0)
    line = VoicePassthrough("default", delay_s=0.05)
    starve_once(line)
    assert line.floor_s >= 0.12 + 0.01  # the worst lateness and one block (plus a margin)
    ring = line.line.ring.nbytes
    for i in range(21, 2000):  # 20 s of voice with nobody pulling: the newest is kept, memory is not
        line.write(AudioBlock(np.full(160, i, np.float32), i * 0.01))
    assert line.line.ring.nbytes == ring
    played = pull(line, 160)
    assert played[0] == 2000 - 800  # the newest 8 s are what is still held
    assert line.report()["skipped_ms"] > 11_000  # and what was lost says so


def test_a_delay_far_too_long_comes_down_in_the_next_silence_only():
    line = VoicePassthrough("default", delay_s=0.5, follow=True)
    speech = np.sin(np.arange(1600) / 3).astype(np.float32) * 0.3  # 100 ms of loud sound
    line.write(AudioBlock(speech, 0.0))
    line.write(AudioBlock(np.zeros(8000, np.float32), 0.1))  # 500 ms of silence
    line.write(AudioBlock(speech, 0.6))
    start = [pull(line, 160) for _ in range(passthrough_line.SETTLED_CALLBACKS)]  # the delay is measured first
    DelayFollower(line).follow(0.05, time.monotonic())  # the picture is 50 ms behind: the voice is far too late
    wanted = int(line.line.ctl[ring.WANTED])
    assert wanted < -0.3 * SAMPLE_RATE
    heard = np.concatenate(start + [pull(line, 160) for _ in range(150)])
    assert np.count_nonzero(np.abs(heard) > 0.1) > 2 * 1000  # both sounds are heard whole…
    assert line.report()["skipped_ms"] == 0
    assert line.delay_s < 0.5 - 0.3  # …and the silence between them was cut short


def test_delay_covers_lookahead_and_one_frame_plus_trim():
    assert passthrough_delay_s(0.05, 25.0, 0.0) == 0.05 + 0.04
    assert passthrough_delay_s(0.0, 30.0, -10.0) == 1 / 30 - 0.010
    assert passthrough_delay_s(0.0, 30.0, -500.0) == 0.0


def test_a_few_ms_step_down_happens_in_silence():
    """The follower moves the delay down a few ms at a time; rounded to whole 10 ms windows those
    steps never happened, and a delay that had risen stayed up."""
    line = VoicePassthrough("default", delay_s=0.06, follow=True)
    line.write(AudioBlock(np.zeros(1600, np.float32), 0.0))  # 100 ms of silence
    for _ in range(4):
        pull(line, 160)
    line.ask_move(-0.004)
    pull(line, 160)
    assert line.delay_s == pytest.approx(0.056, abs=1e-6)
    assert line.report()["skipped_ms"] == 0


def on_time(buffer: DeviceBuffer, start: float, end: float) -> float:
    """Callbacks every quarter buffer (as PulseAudio asks) from `start` to `end`; the last one's time."""
    times = np.arange(start, end, buffer.granted_s / 4)
    for t in times:
        buffer.callback(float(t), False)
    return float(times[-1])


def late(buffer: DeviceBuffer, start: float) -> float:
    """On time for a while, then one callback the whole buffer (and then some) after the one before."""
    at = on_time(buffer, start, start + 0.1) + 1.1 * buffer.granted_s
    buffer.callback(at, False)
    return at


def test_the_device_buffer_starts_small_and_is_raised_in_steps_when_the_device_runs_dry():
    buffer = DeviceBuffer()
    assert buffer.asked_s <= 0.02
    buffer.opened(buffer.asked_s, buffer.asked_s, now=0.0)
    buffer.callback(0.1, underflow=True)  # the stream's start-up: not judged
    assert buffer.wanted(0.2) is None
    buffer.callback(buffer_module.SETTLE_S + 0.1, underflow=True)
    size, why = buffer.wanted(buffer_module.SETTLE_S + 0.2)
    assert size == pytest.approx(2 * buffer_module.START_S) and why == buffer_module.RAN_DRY
    sizes = []
    for n in range(10):  # running dry at every size: up to the largest step, never beyond
        buffer.opened(size, size, now=10.0 * n)
        buffer.callback(10.0 * n + 5, underflow=True)
        change = buffer.wanted(10.0 * n + 5)
        if change is None:
            break
        size = change[0]
        sizes.append(size)
    assert sizes[-1] == buffer_module.MOST_S and all(b > a for a, b in zip(sizes, sizes[1:], strict=False))


def test_late_callbacks_raise_the_buffer_and_quiet_minutes_lower_it_again():
    buffer = DeviceBuffer()
    buffer.opened(0.015, 0.015, now=0.0)
    at = late(buffer, 2.0)
    assert buffer.wanted(at) is None  # one late callback is not yet a pattern…
    at = late(buffer, on_time(buffer, at, 40.0))
    assert buffer.wanted(at) is None  # …nor two half a minute apart
    at = late(buffer, at)
    size, why = buffer.wanted(at)
    assert size == pytest.approx(0.03) and why == buffer_module.LATE
    buffer.opened(size, size, now=at)
    calm_until = on_time(buffer, at, at + buffer_module.LOWER_AFTER_S - 1)  # on time, for minutes
    assert buffer.wanted(calm_until) is None
    size, why = buffer.wanted(at + buffer_module.LOWER_AFTER_S + 1)
    assert size == pytest.approx(0.015) and why == buffer_module.QUIET


@pytest.mark.integration
def test_the_player_starts_with_a_small_device_buffer_and_resizes_it_only_in_silence(pulse, monkeypatch):
    """A real PortAudio stream through the PulseAudio null sink, on an idle machine: the buffer the
    device grants first is at most 30 ms (a fixed 100 ms put mic → mouth at ~190 ms)."""
    for key, value in pulse.items():
        monkeypatch.setenv(key, value)
    line = VoicePassthrough("pulse", delay_s=0.05, follow=True)
    with line:
        assert 0 < line.device_latency_s <= 0.030
    from firmware_app.sources.mic import require_sounddevice

    sd = require_sounddevice()
    sd._terminate()  # PortAudio lists ALSA's devices once: here, in this process, as the server is now
    sd._initialize()
    shared = ring.SharedLine()
    player = Player(sd, shared, "pulse", buffer_module.START_S)
    try:
        start = player.stream.latency
        player.buffer._ran_dry, player.buffer._judged_from = True, 0.0  # as if the device had run dry
        shared.ctl[ring.QUIET_RUN] = 0  # …inside a word: it waits
        player.resize_if_wanted()
        assert player.stream.latency == start and shared.ctl[ring.BUFFER_CHANGES] == 0
        shared.ctl[ring.QUIET_RUN] = SAMPLE_RATE  # a second of silence: now
        player.resize_if_wanted()
        assert player.stream.latency > start and shared.ctl[ring.BUFFER_CHANGES] == 1
        assert shared.ctl[ring.BUFFER_US] == round(player.stream.latency * 1e6)
        assert shared.ctl[ring.BUFFER_WHY] == buffer_module.RAN_DRY
    finally:
        player.close()


@pytest.mark.integration
def test_the_player_is_this_version_even_started_beside_another_checkout(pulse, monkeypatch, tmp_path):
    """`python -m` imports from its working directory first: run from another checkout (an older
    ring with fewer control slots), the player laid the callbacks' wall times over the device's
    latency slot and `bench load` read an A/V offset of +4674301462715084 ms."""
    for key, value in pulse.items():
        monkeypatch.setenv(key, value)
    decoy = tmp_path / "firmware_app" / "audio" / "passthrough"
    decoy.mkdir(parents=True)
    for package in (decoy, decoy.parent, decoy.parent.parent):
        (package / "__init__.py").write_text("")
    imported = tmp_path / "decoy-imported"
    (decoy / "player.py").write_text(f"open({str(imported)!r}, 'w').close()\nprint('ok 0.015', flush=True)\n")
    monkeypatch.chdir(tmp_path)
    line = VoicePassthrough("pulse", delay_s=0.05)
    with line:
        assert 0 < line.device_latency_s <= 0.030
    assert not imported.exists()


@pytest.mark.integration
def test_a_player_of_another_layout_refuses_instead_of_misreading_the_line():
    """The shared block's size is the layout's fingerprint: a mismatch is a clear error, not garbage."""
    fd = os.memfd_create("other-layout", 0)
    os.ftruncate(fd, ring.SharedLine.NBYTES - 24)  # three control slots fewer
    try:
        result = subprocess.run(
            [sys.executable, "-m", "firmware_app.audio.passthrough.player", str(fd), "", "0.015"],
            pass_fds=(fd,),
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        os.close(fd)
    assert result.stdout.startswith("error ") and "another version" in result.stdout, result.stdout + result.stderr
