"""`file://out.mp4`: H.264 video with the AAC voice muxed in (PyAV).

Written to a `.part` file and renamed when complete, so a crash or power cut never leaves a
half-written MP4 under the real name. With `provenance` the complete file gets its signed C2PA
manifest on the way to its real name (sinks/provenance.py); a failure to sign leaves no file.
"""

from __future__ import annotations

import logging
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from firmware_app.errors import MediaError
from firmware_app.frames import SAMPLE_RATE, AudioBlock, VideoFrame
from firmware_app.sinks.base import Sink
from firmware_app.sinks.provenance import Provenance

log = logging.getLogger(__name__)

AUDIO_RATE = 48_000  # AAC players expect a standard rate; the voice is upsampled once here


class FileSink(Sink):
    def __init__(self, path: Path, provenance: Provenance | None = None) -> None:
        self.path = path
        self.provenance = provenance
        self.partial = path.with_name(path.name + ".part")
        self._container = None
        self._video = None
        self._audio = None
        self._resampler = None
        self._frames = 0

    def open(self, width: int, height: int, fps: float) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._container = av.open(str(self.partial), mode="w", format="mp4")
        except (OSError, av.FFmpegError) as exc:
            raise MediaError(f"cannot write {self.path}: {exc}", "choose a writable output path") from None
        rate = Fraction(fps).limit_denominator(1001)
        self._video = self._container.add_stream("libx264", rate=rate)
        self._video.width, self._video.height = width, height
        self._video.pix_fmt = "yuv420p"
        self._video.options = {"crf": "20", "preset": "veryfast"}
        self._video.codec_context.time_base = 1 / rate
        self._audio = self._container.add_stream("aac", rate=AUDIO_RATE, layout="mono")
        self._resampler = av.AudioResampler(format="fltp", layout="mono", rate=AUDIO_RATE)
        self._frames = 0

    def write_video(self, frame: VideoFrame) -> None:
        out = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame.image), format="bgr24")
        out.pts = self._frames
        out.time_base = self._video.codec_context.time_base
        self._frames += 1
        self._container.mux(self._video.encode(out))

    def write_audio(self, block: AudioBlock) -> None:
        samples = np.clip(block.samples, -1, 1).astype(np.float32).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(samples, format="flt", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        frame.pts = round(block.t * SAMPLE_RATE)
        frame.time_base = Fraction(1, SAMPLE_RATE)
        for resampled in self._resampler.resample(frame):
            self._container.mux(self._audio.encode(resampled))

    def close(self, complete: bool = True) -> None:
        if self._container is None:
            return
        try:
            for resampled in self._resampler.resample(None):
                self._container.mux(self._audio.encode(resampled))
            self._container.mux(self._audio.encode(None))
            self._container.mux(self._video.encode(None))
        finally:
            self._container.close()
            self._container = None
        if complete and self._frames and self.provenance is not None:
            try:
                self.provenance.sign(self.partial, self.path, "video/mp4")
            finally:
                self.partial.unlink(missing_ok=True)  # unmarked: never kept beside or instead of the signed file
            log.info("wrote %s (%d frames, content credentials signed)", self.path, self._frames)
        elif complete and self._frames:
            os.replace(self.partial, self.path)
            log.info("wrote %s (%d frames)", self.path, self._frames)
        else:
            log.warning("output incomplete; partial file kept at %s", self.partial)
