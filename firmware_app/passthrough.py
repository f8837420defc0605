"""Audio passthrough: the appliance plays the voice through its own speaker, delayed so that what
visitors hear lands together with the mouth they see (people notice sound that leads the picture
most; ATSC IS-191 allows 15 ms lead)."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

import numpy as np

from firmware_app.errors import DeviceError
from firmware_app.frames import SAMPLE_RATE, AudioBlock
from firmware_app.resource import Resource
from firmware_app.sources.mic import require_sounddevice

log = logging.getLogger(__name__)


def passthrough_delay_s(lookahead_s: float, fps: float, trim_ms: float) -> float:
    """The starting delay: the model's look-ahead plus one frame of render and display. Live, the
    delay then follows the pipeline's measured latency (`follow_latency`); `audio.passthrough_trim_ms`
    corrects what no measurement here can see (the display's own lag, the speaker's distance)."""
    return max(0.0, lookahead_s + 1.0 / fps + trim_ms / 1000.0)


FOLLOW_STEP_S = 0.004  # the delay moves toward the measured latency by at most this much at a time…
FOLLOW_CATCH_UP_S = 0.025  # …or this much while it is far off (start-up), then settles
FOLLOW_EVERY_S = 0.5  # …this often
FOLLOW_DEADBAND_S = 0.003
QUIET_RMS = 0.003  # about -50 dBFS: the delay moves only where the voice is this quiet, so no one hears it
QUIET_MARGIN_S = 0.03  # …for this long around the samples a move skips or repeats


class VoicePassthrough(Resource):
    """A delay line locked to the voice's own sample clock: output sample n plays input sample
    n - delay. A block that arrives too late is skipped rather than played late, so a hiccup
    never shifts the rest of the voice out of sync."""

    def __init__(self, device: str, delay_s: float, follow: bool = False, trim_s: float = 0.0) -> None:
        self.device = None if device in ("", "default") else device
        self.delay_s = delay_s
        self.follow = follow  # live: move the delay toward the measured picture latency
        self.trim_s = trim_s
        self._last_follow = 0.0
        self._wanted_step = 0.0
        self._device_latency = 0.0
        self.late_samples = 0  # voice that arrived after its play-out time (heard as silence)
        self._chunks: deque[tuple[int, np.ndarray]] = deque()  # (first sample index, samples)
        self._next_input: int | None = None  # input sample the next output sample plays
        self._received_until = 0  # input sample after the newest one written
        self._quiet_run = 0  # output samples played in a row below QUIET_RMS
        self.underflows = 0
        self._lock = threading.Lock()
        self._stream = None

    def open(self) -> None:
        sd = require_sounddevice()
        try:
            self._stream = sd.OutputStream(
                samplerate=SAMPLE_RATE, channels=1, dtype="float32", device=self.device, callback=self._fill
            )
            self._stream.start()
            self._device_latency = float(self._stream.latency)
        except (sd.PortAudioError, ValueError) as exc:
            outputs = [d["name"] for d in sd.query_devices() if d["max_output_channels"] > 0]
            raise DeviceError(
                f"cannot open audio output {self.device or 'default'!r} for passthrough: {exc}",
                "set audio.passthrough_device to one of: "
                + (", ".join(repr(n) for n in outputs) or "none found")
                + ", or audio.passthrough: false",
            ) from None
        log.info("voice passthrough to %s, delayed %.0f ms (+ %.0f ms in the device)", self.device or "default", self.delay_s * 1000, self._device_latency * 1000)

    def write(self, block: AudioBlock) -> None:
        first = round(block.t * SAMPLE_RATE)
        with self._lock:
            if self._next_input is None:  # the voice starts now: play it `delay` from now
                self._next_input = first - round(self.delay_s * SAMPLE_RATE)
            self.late_samples += max(0, min(first + len(block.samples), self._next_input) - first)
            self._chunks.append((first, block.samples.astype(np.float32)))
            self._received_until = first + len(block.samples)

    def _fill(self, outdata: np.ndarray, frames: int, time_info: object, status: object) -> None:
        out = outdata[:, 0]
        out[:] = 0.0
        with self._lock:
            if self._next_input is None:
                return
            if status and getattr(status, "output_underflow", False):
                # the device ran dry and played silence we never counted: the sample clock no
                # longer says when a sample plays, so anchor again as at the start
                self.underflows += 1
                self._next_input = self._received_until - round(self.delay_s * SAMPLE_RATE)
            start, end = self._next_input, self._next_input + frames
            while self._chunks and self._chunks[0][0] + len(self._chunks[0][1]) <= start:
                self._chunks.popleft()  # already played (or too late to play)
            for first, samples in self._chunks:
                if first >= end:
                    break
                lo, hi = max(first, start), min(first + len(samples), end)
                out[lo - start : hi - start] = samples[lo - first : hi - first]
            self._next_input = end
            self._quiet_run = self._quiet_run + frames if np.sqrt(np.mean(out**2)) < QUIET_RMS else 0
            if self._wanted_step and self._can_move_unheard(round(self._wanted_step * SAMPLE_RATE)):
                self.delay_s = max(0.0, self.delay_s + self._wanted_step)
                self._next_input -= round(self._wanted_step * SAMPLE_RATE)  # later play-out = read further back
                self._wanted_step = 0.0

    def _can_move_unheard(self, step: int) -> bool:
        """Moving the delay repeats (step > 0) the `step` samples just played or skips (step < 0)
        the next -step ones: only where all of that, and a margin, is silence. One quiet device
        buffer is not enough: inside a word (a stop consonant) a few ms can be that quiet."""
        margin = round(QUIET_MARGIN_S * SAMPLE_RATE)
        if self._quiet_run < max(step, 0) + margin:
            return False
        return step >= 0 or self._level(self._next_input, -step + margin) < QUIET_RMS

    def _level(self, start: int, count: int) -> float:
        """RMS of the input samples [start, start + count) still held (missing ones count as silence)."""
        total = 0.0
        for first, samples in self._chunks:
            lo, hi = max(first, start), min(first + len(samples), start + count)
            if lo < hi:
                total += float(np.sum(samples[lo - first : hi - first] ** 2))
        return float(np.sqrt(total / count))

    def follow_latency(self, video_latency_s: float) -> None:
        """Ask the delay to move toward the measured picture latency (+ trim), a few ms at a time;
        the move happens at the next quiet moment."""
        now = time.monotonic()
        if not self.follow or video_latency_s <= 0 or now - self._last_follow < FOLLOW_EVERY_S:
            return
        self._last_follow = now
        error = video_latency_s + self.trim_s - self.play_delay_s
        if abs(error) < FOLLOW_DEADBAND_S:
            return
        limit = FOLLOW_CATCH_UP_S if abs(error) > 0.03 else FOLLOW_STEP_S
        with self._lock:
            self._wanted_step = float(np.clip(error, -limit, limit))

    def set_trim(self, trim_s: float) -> None:
        """The operator's trim, changed live (the console's slider): the delay moves by the
        difference at quiet moments, toward the measured latency (auto) or by the whole step (fixed)."""
        with self._lock:
            step, self.trim_s = trim_s - self.trim_s, trim_s
            if not self.follow:
                self._wanted_step += step

    @property
    def play_delay_s(self) -> float:
        """From a sample's capture to its sound leaving the device: the delay line plus the output
        latency PortAudio reports."""
        return self.delay_s + self._device_latency

    def _pending(self) -> bool:
        with self._lock:
            if self._next_input is None or not self._chunks:
                return False
            first, samples = self._chunks[-1]
            return self._next_input < first + len(samples)

    def close(self, timeout_s: float = 2.0) -> None:
        """Play out what the delay line still holds and then the device's own buffer (the end of
        a voice is not cut off), then stop. The wait for the device is explicit: through a sound
        server PortAudio's stop returns while the server still holds the last of the voice."""
        deadline = time.monotonic() + timeout_s
        while self._stream is not None and self._pending() and time.monotonic() < deadline:
            time.sleep(0.01)
        if self._stream is not None:
            time.sleep(max(0.0, min(self._device_latency + 0.05, deadline - time.monotonic())))
        if self.late_samples or self.underflows:
            log.warning("passthrough: %.0f ms of voice arrived after its play-out time and was skipped; the device ran dry %d times",
                        1000 * self.late_samples / SAMPLE_RATE, self.underflows)
        if self._stream is not None:
            self._stream.stop()
            self._stream.close()
            self._stream = None
