"""`file://speech.wav` (any format FFmpeg reads): decoded once to mono 16 kHz, served in blocks."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from firmware_app.errors import MediaError
from firmware_app.frames import SAMPLE_RATE, AudioBlock
from firmware_app.sources.base import AudioSource, Pacer, require_file


def decode_audio(path: Path) -> np.ndarray:
    """The whole file as float32 mono at SAMPLE_RATE."""
    require_file(path, "audio file")
    if path.stat().st_size == 0:
        raise MediaError(f"the audio file {path} is empty (0 bytes)", "give a WAV, MP3, FLAC or a video with sound")
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise MediaError(f"{path} has no audio stream", "give a WAV, MP3, FLAC or a video with sound")
            # Keep the channels and average them: FFmpeg's own downmix adds +3 dB to stereo.
            resampler = av.AudioResampler(format="fltp", rate=SAMPLE_RATE)
            chunks = []
            for frame in container.decode(audio=0):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().mean(axis=0))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().mean(axis=0))
    except av.FFmpegError as exc:
        raise MediaError(
            f"cannot decode {path}: {exc.strerror or exc}", "check that the file is a complete audio file"
        ) from None
    if not chunks:
        raise MediaError(f"{path} contains no audio samples", "give a file with sound in it")
    return np.concatenate(chunks).astype(np.float32)


class AudioFileSource(AudioSource):
    """Blocks of a decoded file. `_pos` counts samples served since open, on one clock: looped,
    pass k serves the file again at t = k × its length, so time never restarts (the mouth track,
    the passthrough and the A/V measures all see one continuous voice)."""

    def __init__(self, path: Path, block_ms: int, realtime: bool) -> None:
        self.path = path
        self.block = SAMPLE_RATE * block_ms // 1000
        self.live = realtime
        self.loop = False
        self._pacer = Pacer(realtime)
        self._samples = np.zeros(0, np.float32)
        self._pos = 0

    def loop_forever(self) -> None:
        self.loop = True

    def open(self) -> None:
        self._samples = decode_audio(self.path)
        self.duration = None if self.loop else len(self._samples) / SAMPLE_RATE
        self._pacer = Pacer(self.live)  # paced from this open, as _pos is
        self._pos = 0

    def read(self, wait: bool) -> AudioBlock | None:
        if self.finished:
            return None
        count = self.block if self.loop else min(self.block, len(self._samples) - self._pos)
        t_end = (self._pos + count) / SAMPLE_RATE
        if wait:
            self._pacer.wait_until(t_end)
        elif not self._pacer.ready(t_end):
            return None
        if self.loop:  # a block may run over the end into the next pass
            samples = self._samples.take(np.arange(self._pos, self._pos + count), mode="wrap")
        else:
            samples = self._samples[self._pos : self._pos + count]
        block = AudioBlock(samples, self._pos / SAMPLE_RATE)
        self._pos += count
        return block

    @property
    def finished(self) -> bool:
        return not self.loop and self._pos >= len(self._samples)


def write_wav(path: Path, samples: np.ndarray, rate: int = SAMPLE_RATE) -> None:
    """Mono 16-bit WAV (for players such as paplay, and for tests)."""
    import wave

    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
