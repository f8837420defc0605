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
        log.info("voice passthrough to %s, delayed %.0f ms", self.device or "default", self.delay_s * 1000)

    def write(self, block: AudioBlock) -> None:
        first = round(block.t * SAMPLE_RATE)
        with self._lock:
            if self._next_input is None:  # the voice starts now: play it `delay` from now
                self._next_input = first - round(self.delay_s * SAMPLE_RATE)
            self.late_samples += max(0, min(first + len(block.samples), self._next_input) - first)
            self._chunks.append((first, block.samples.astype(np.float32)))

    def _fill(self, outdata: np.ndarray, frames: int, time_info: object, status: object) -> None:
        out = outdata[:, 0]
        out[:] = 0.0
        with self._lock:
            if self._next_input is None:
                return
            start, end = self._next_input, self._next_input + frames
            while self._chunks and self._chunks[0][0] + len(self._chunks[0][1]) <= start:
                self._chunks.popleft()  # already played (or too late to play)
            for first, samples in self._chunks:
                if first >= end:
                    break
                lo, hi = max(first, start), min(first + len(samples), end)
                out[lo - start : hi - start] = samples[lo - first : hi - first]
            self._next_input = end
            if self._wanted_step and np.sqrt(np.mean(out**2)) < QUIET_RMS:
                # the voice is silent here: moving the delay now skips or repeats only silence
                self.delay_s = max(0.0, self.delay_s + self._wanted_step)
                self._next_input -= round(self._wanted_step * SAMPLE_RATE)  # later play-out = read further back
                self._wanted_step = 0.0

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
        """Play out what the delay line still holds (the end of a voice is not cut off), then stop;
        PortAudio's stop itself waits for the device's own buffers."""
        deadline = time.monotonic() + timeout_s
        while self._stream is not None and self._pending() and time.monotonic() < deadline:
            time.sleep(0.01)
        if self.late_samples:
            log.warning("passthrough: %.0f ms of voice arrived after its play-out time and was skipped",
                        1000 * self.late_samples / SAMPLE_RATE)
        if self._stream is not None:
            self._stream.stop()
            self._stream.close()
            self._stream = None
