"""Mouth models: 10 ms audio features in, ARKit-named mouth blendshapes out, behind one interface."""

from __future__ import annotations

from firmware_app.config import ModelSettings
from firmware_app.mouth.base import MouthModel


def create_mouth_model(settings: ModelSettings) -> MouthModel:
    if settings.kind == "loudness":
        from firmware_app.mouth.loudness import LoudnessBaseline

        return LoudnessBaseline(settings.loudness)
    raise AssertionError(f"unhandled mouth model kind {settings.kind!r}")  # config validation forbids this


__all__ = ["MouthModel", "create_mouth_model"]
