"""Mouth models: 10 ms audio features in, ARKit-named mouth blendshapes out, behind one interface."""

from __future__ import annotations

from pathlib import Path

from firmware_app.config import InferenceSettings, ModelSettings
from firmware_app.mouth.base import MouthModel


def create_mouth_model(settings: ModelSettings, inference: InferenceSettings | None = None) -> MouthModel:
    if settings.kind == "learned":
        from firmware_app.assets import resolve_path

        model = open_learned_model(resolve_path(settings.onnx_path()), inference, settings.release_timing)
        check_lookahead(model, settings)
        return model
    if settings.kind == "loudness":
        from firmware_app.mouth.loudness import LoudnessBaseline

        return LoudnessBaseline(settings.loudness)
    raise AssertionError(f"unhandled mouth model kind {settings.kind!r}")  # config validation forbids this


def open_learned_model(
    path: Path, inference: InferenceSettings | None = None, release_timing: bool = True
) -> MouthModel:
    """A learned model's file as the runtime runs it (release timing on unless asked), whatever
    its look-ahead: what a config gets, and what `models.eval` scores any trained file with."""
    from firmware_app.mouth.learned import default_engine_dir, load_learned_model

    inference = inference or InferenceSettings()
    engine_dir = default_engine_dir() if inference.engine_dir == "auto" else Path(inference.engine_dir).expanduser()
    model = load_learned_model(path, inference.backend, engine_dir, inference.fp16)
    if not release_timing:
        return model
    from firmware_app.mouth.release_timing import ReleaseTiming

    return ReleaseTiming(model)


def check_lookahead(model: MouthModel, settings: ModelSettings) -> None:
    """A model file that looks another way ahead than `model.lookahead_ms` says: the config names
    one mouth and would get another, so it is refused rather than run."""
    from firmware_app.errors import ModelError

    looks_ms = round(model.lookahead_s * 1000)
    if looks_ms != settings.lookahead_ms:
        raise ModelError(
            f"model.path {settings.onnx_path()} looks {looks_ms} ms ahead, but model.lookahead_ms is "
            f"{settings.lookahead_ms}",
            f"set model.lookahead_ms: {looks_ms}, or model.path: auto for the bundled {settings.lookahead_ms} ms model",
        )


def fallback_model(model: MouthModel, settings: ModelSettings) -> MouthModel:
    """What takes over when `model` fails while running: the learned model on ONNX Runtime if it
    ran on TensorRT, else the loudness baseline (which needs nothing that can fail)."""
    if settings.kind == "learned" and "onnxruntime" not in model.name:
        return create_mouth_model(settings, InferenceSettings(backend="onnxruntime"))
    from firmware_app.mouth.loudness import LoudnessBaseline

    return LoudnessBaseline(settings.loudness)


__all__ = ["MouthModel", "create_mouth_model", "fallback_model", "open_learned_model"]
