"""`mic://default` or `mic://<device name>`: live capture through PortAudio (sounddevice).

The stream opens at the device's own rate (its default, as PortAudio reports it) and is resampled
to 16 kHz here: without a sound server PortAudio opens ALSA `hw:` devices, which convert nothing,
and many USB microphones refuse 16 kHz there (the kiosk unit also sets PA_ALSA_PLUGHW=1, so the
channel count and format are converted by ALSA's plug layer)."""

from __future__ import annotations

import logging
import queue
import threading

import numpy as np

from firmware_app.audio.resample import StreamResampler
from firmware_app.errors import DeviceError
from firmware_app.frames import SAMPLE_RATE, AudioBlock
from firmware_app.platform.priority import make_this_thread_realtime, realtime_threads_spawned
from firmware_app.sources.base import AudioSource

log = logging.getLogger(__name__)

CLOSE_TIMEOUT_S = 1.0


def require_sounddevice():
    try:
        import sounddevice
    except OSError as exc:  # the wheel does not bundle PortAudio on Linux
        raise DeviceError(f"PortAudio is not installed ({exc})", "sudo apt-get install libportaudio2") from None
    return sounddevice


def device_rate(sd, device: str | None) -> int:
    """The input device's own sample rate (PortAudio's default for it). A device PortAudio does not
    list may have been plugged in since it started: it looks once more."""
    for attempt in range(2):
        try:
            return int(round(sd.query_devices(device, "input")["default_samplerate"])) or SAMPLE_RATE
        except (ValueError, sd.PortAudioError):  # not (yet) there: the stream's open says it with the fix
            if attempt == 0:
                rescan(sd)
    return SAMPLE_RATE


def rescan(sd) -> None:
    """PortAudio's device list again (the kiosk's only in-process PortAudio stream is this one, closed
    here; the passthrough plays from its own process)."""
    try:
        sd._terminate()
        sd._initialize()
    except sd.PortAudioError as exc:
        log.debug("PortAudio rescan: %s", exc)


def input_device_names() -> list[str]:
    sd = require_sounddevice()
    return [d["name"] for d in sd.query_devices() if d["max_input_channels"] > 0]


class MicSource(AudioSource):
    live = True

    def __init__(self, device: str, block_ms: int, queue_blocks: int = 200) -> None:
        self.device = None if device in ("", "default") else device
        self.block_ms = block_ms
        self.block = SAMPLE_RATE * block_ms // 1000
        self.rate = SAMPLE_RATE  # the device's, once open
        self._resampler: StreamResampler | None = None
        self._pending = np.zeros(0, np.float32)  # resampled, not yet a whole block
        self.overflows = 0
        self.dropped_blocks = 0
        self._reported_losses = 0
        self._queue: queue.Queue[np.ndarray] = queue.Queue(maxsize=queue_blocks)
        self._samples_read = 0
        self._stream = None
        self._closing = threading.Lock()
        self._callback_priority = ""  # what PortAudio's capture thread got (its first call sets it)

    def open(self) -> None:
        sd = require_sounddevice()
        self._callback_priority = ""  # a reopened stream has a new capture thread
        try:
            self.rate = device_rate(sd, self.device)
            self._resampler = None if self.rate == SAMPLE_RATE else StreamResampler(self.rate, SAMPLE_RATE)
            self._pending = np.zeros(0, np.float32)
            with realtime_threads_spawned():  # the capture's threads must not miss their turn
                self._stream = sd.InputStream(
                    samplerate=self.rate,
                    channels=1,
                    dtype="float32",
                    blocksize=self.rate * self.block_ms // 1000,
                    device=self.device,
                    callback=self._on_audio,
                    # the device's low-latency buffer: its default ("high") held every sound
                    # ~8 ms longer before the first block came (README, Latency)
                    latency="low",
                )
                self._stream.start()
        except (sd.PortAudioError, ValueError) as exc:
            names = input_device_names()
            listing = ", ".join(repr(n) for n in names) if names else "none found"
            raise DeviceError(
                f"cannot open microphone {self.device or 'default'!r}: {exc}",
                f"plug in a microphone or set sources.audio to mic://<name>; input devices here: {listing}",
            ) from None
        log.info(
            "microphone %s open at %d Hz%s, latency %.1f ms",
            self.device or "default",
            self.rate,
            f", resampled to {SAMPLE_RATE} Hz" if self._resampler is not None else "",
            self.latency_s * 1000,
        )

    @property
    def latency_s(self) -> float:
        """The capture's own delay: how long the device holds a sound before PortAudio hands it on."""
        return float(self._stream.latency) if self._stream is not None else 0.0

    def _on_audio(self, indata: np.ndarray, frames: int, time_info: object, status: object) -> None:
        if not self._callback_priority:  # a capture that misses its turn overflows: sound lost
            self._callback_priority = make_this_thread_realtime(fallback_nice=-10)
        if status and getattr(status, "input_overflow", False):
            self.overflows += 1
        try:
            self._queue.put_nowait(indata[:, 0].copy())
        except queue.Full:  # the consumer stalled: drop the oldest sound, keep the newest
            self.dropped_blocks += 1

    def read(self, wait: bool) -> AudioBlock | None:
        while len(self._pending) < self.block:
            try:
                captured = self._queue.get(timeout=1.0) if wait else self._queue.get_nowait()
            except queue.Empty:
                return None
            if self._resampler is None:
                self._pending = captured
                break
            self._pending = np.concatenate([self._pending, self._resampler.push(captured)])
        samples, self._pending = self._pending[: self.block], self._pending[self.block :]
        self._report_losses()
        block = AudioBlock(samples, self._samples_read / SAMPLE_RATE)
        self._samples_read += len(samples)
        return block

    def _report_losses(self) -> None:
        """Sound the capture lost since the last report, logged here rather than in PortAudio's
        callback (which must not wait on a log handler)."""
        lost = self.overflows + self.dropped_blocks
        if lost > self._reported_losses:
            log.warning(
                "microphone lost sound: %d overflow(s) (its capture thread was starved), %d block(s) dropped "
                "(the appliance fell behind)",
                self.overflows,
                self.dropped_blocks,
            )
            self._reported_losses = lost

    def skip_backlog(self) -> None:
        # blocks queued while the rest of the appliance started: stale for the mouth, and a
        # passthrough anchored on them would play the voice that much late; the sample clock
        # still counts them, so it stays continuous
        skipped = len(self._pending)
        self._pending = self._pending[:0]
        while True:
            try:
                skipped += len(self._queue.get_nowait()) * SAMPLE_RATE // self.rate
            except queue.Empty:
                self._samples_read += skipped
                return

    @property
    def finished(self) -> bool:
        return False

    def close(self) -> None:
        # abort, not stop: there is nothing to drain on an input. Even abort can block for ever
        # when the sound server has died under the stream, so it runs on a helper thread and a
        # stream that will not close is left behind: the voice thread must get on with reopening
        # and a SIGTERM must not wait. The lock makes a second close a no-op, not a concurrent one
        # (two threads closing one PortAudio stream deadlock).
        with self._closing:
            stream, self._stream = self._stream, None
        if stream is None:
            return
        closer = threading.Thread(target=_close_stream, args=(stream,), name="microphone-close", daemon=True)
        closer.start()
        closer.join(CLOSE_TIMEOUT_S)
        if closer.is_alive():
            log.warning(
                "the microphone's driver did not close within %.0f s (its sound server is gone?); left behind",
                CLOSE_TIMEOUT_S,
            )


def _close_stream(stream) -> None:
    try:
        stream.abort()
        stream.close()
    except require_sounddevice().PortAudioError as exc:  # a device already gone
        log.debug("closing the microphone: %s", exc)
