"""The mouth-model interface."""

from __future__ import annotations

from abc import ABC, abstractmethod

from firmware_app.frames import FeatureFrames, MouthShape


class MouthModel(ABC):
    name: str = "mouth model"
    lookahead_s: float = 0.0  # how much future audio a shape for time t needs

    @abstractmethod
    def push(self, features: FeatureFrames) -> list[MouthShape]:
        """Consume consecutive feature frames; return the shapes that are now final, oldest first.

        Each returned shape's `t` is the audio time it depicts (look-ahead already compensated).
        """

    def reset(self) -> None:
        """Forget the past: the next push starts a new stream (a reopened microphone)."""

    def flush(self) -> list[MouthShape]:
        """End of a file: the shapes still held back for look-ahead."""
        return []
