"""The passthrough delay line, driven the way PortAudio drives it (callbacks asking for samples)."""

from __future__ import annotations

import numpy as np

from firmware_app.frames import SAMPLE_RATE, AudioBlock
from firmware_app.passthrough import VoicePassthrough, passthrough_delay_s


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


def test_a_late_block_is_skipped_not_played_late():
    line = VoicePassthrough("default", delay_s=0.0)
    line.write(AudioBlock(np.ones(160, np.float32), 0.0))
    pull(line, 480)  # the device has played up to sample 480; block 160..320 never came
    line.write(AudioBlock(np.full(160, 2.0, np.float32), 160 / SAMPLE_RATE))  # too late
    line.write(AudioBlock(np.full(160, 3.0, np.float32), 480 / SAMPLE_RATE))  # on time
    played = pull(line, 160)
    np.testing.assert_array_equal(played, 3.0)
    assert line.late_samples == 160


def test_delay_covers_lookahead_and_one_frame_plus_trim():
    assert passthrough_delay_s(0.05, 25.0, 0.0) == 0.05 + 0.04
    assert passthrough_delay_s(0.0, 30.0, -10.0) == 1 / 30 - 0.010
    assert passthrough_delay_s(0.0, 30.0, -500.0) == 0.0
