"""The sink interface: rendered frames and the audio they belong to go out through here."""

from __future__ import annotations

from abc import ABC, abstractmethod

from firmware_app.frames import AudioBlock, VideoFrame


class Sink(ABC):
    def __enter__(self) -> Sink:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.close(complete=exc_type is None)

    @abstractmethod
    def open(self, width: int, height: int, fps: float) -> None:
        """Prepare for frames of this size and rate."""

    @abstractmethod
    def write_video(self, frame: VideoFrame) -> None:
        """Show or store one rendered frame."""

    def write_audio(self, block: AudioBlock) -> None:
        """Store or play the audio the frames depict; sinks without sound ignore it."""

    @property
    def closed_by_user(self) -> bool:
        """True when a person closed the output (a window), so the run should stop."""
        return False

    def close(self, complete: bool = True) -> None:
        """Finish the output; `complete` is False when the run failed part-way."""
