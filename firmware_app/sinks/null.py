"""`null://`: discards frames (benchmarks, headless tests); counts what it was given."""

from __future__ import annotations

from firmware_app.frames import AudioBlock, VideoFrame
from firmware_app.sinks.base import Sink


class NullSink(Sink):
    def __init__(self) -> None:
        self.frames = 0
        self.audio_seconds = 0.0

    def open(self, width: int, height: int, fps: float) -> None:
        self.frames = 0

    def write_video(self, frame: VideoFrame) -> None:
        self.frames += 1

    def write_audio(self, block: AudioBlock) -> None:
        self.audio_seconds += block.duration
