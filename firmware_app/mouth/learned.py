"""The learned mouth model at runtime: the exported ONNX step, streamed one 10 ms frame at a time.

The model sees a window of CONTEXT past and LOOKAHEAD future feature frames and carries a GRU
state, so the shape for frame t is final once frame t + LOOKAHEAD has arrived. The window starts
filled with silent frames, exactly as training padded every utterance, so streaming in blocks of
any size gives the same numbers as one pass over a whole file.
"""

from __future__ import annotations

import json
import os
from collections import deque
from pathlib import Path

import numpy as np

from firmware_app.audio.features import N_MELS, SILENT_FRAME, pad_silence
from firmware_app.errors import ModelError
from firmware_app.frames import HOP_S, FeatureFrames, MouthShape
from firmware_app.inference import Backend, open_backend
from firmware_app.inference.onnxruntime_backend import OnnxRuntimeBackend
from firmware_app.mouth.base import MouthModel
from firmware_app.shapes import BLENDSHAPES, VISEMES


class LearnedMouthModel(MouthModel):
    def __init__(self, backend: Backend, path: Path) -> None:
        self.backend = backend
        self.path = path
        self._chunk: OnnxRuntimeBackend | None = None
        self.name = f"learned model ({backend.name})"
        meta = backend.metadata
        try:
            self.context = int(meta["ventriloquist.context"])
            self.lookahead = int(meta["ventriloquist.lookahead_frames"])
            visemes = json.loads(meta["ventriloquist.visemes"])
            blendshapes = json.loads(meta["ventriloquist.blendshapes"])
        except (KeyError, ValueError):
            raise ModelError(
                f"{path} is not a Ventriloquist mouth model (metadata missing)",
                "use the shipped model (model.path: auto)",
            ) from None
        if tuple(visemes) != VISEMES or tuple(blendshapes) != BLENDSHAPES:
            raise ModelError(
                f"{path} predicts other visemes or blendshapes than this version expects", "retrain or update"
            )
        _, self.window, features = backend.input_shapes["features"]
        if features != 1 + N_MELS:
            raise ModelError(
                f"{path} expects {features} features per frame, this runtime makes {1 + N_MELS}", "retrain"
            )
        self.state_size = backend.input_shapes["state"][1]
        # a shape for frame t needs the audio of frame t + lookahead, which ends one hop later
        self.lookahead_s = (self.lookahead + 1) * HOP_S
        self.rest_state = self._settle_in_silence()
        self.reset()

    def _settle_in_silence(self, steps: int = 50) -> np.ndarray:
        """The recurrent state after half a second of silence: where every stream starts, so the first
        frames show a mouth at rest rather than the network's start-up transient."""
        window = np.repeat(SILENT_FRAME[None, None], self.window, axis=1).astype(np.float32)
        state = np.zeros((1, self.state_size), np.float32)
        for _ in range(steps):
            _, _, state = self.backend.run({"features": window, "state": state})
        return state

    def reset(self) -> None:
        self._window: deque[np.ndarray] = deque([SILENT_FRAME] * self.context, maxlen=self.window)
        self._state = self.rest_state.copy()
        self._next_t: float | None = None

    def push(self, features: FeatureFrames) -> list[MouthShape]:
        if self._next_t is None:  # a stream's first frame: shapes are stamped on its clock
            self._next_t = features.t
        shapes = []
        for row in features.values:
            self._window.append(row)
            if len(self._window) == self.window:
                shapes.append(self._step())
        return shapes

    def flush(self) -> list[MouthShape]:
        """End of a file: feed silence so the last LOOKAHEAD frames get their shapes too."""
        silence = np.repeat(SILENT_FRAME[None], self.lookahead, axis=0)
        return self.push(FeatureFrames(silence, 0.0))

    def offline(self, frames: FeatureFrames) -> tuple[np.ndarray, np.ndarray] | None:
        """A whole file at once through the chunked graph (`mouth.chunk.onnx`, the same network
        unrolled over many frames): (viseme probabilities T x 15, blendshapes T x 16), the numbers
        streaming would give. None when the chunked graph is not shipped."""
        features = frames.values
        if not self.prepare_offline():
            return None
        _, frames_in, _ = self._chunk.input_shapes["features"]
        step = frames_in - (self.window - 1)
        total = len(features)
        chunks = -(-total // step)
        tail = chunks * step - total + self.lookahead
        padded = pad_silence(features, self.context, tail)
        state = self.rest_state.copy()
        visemes, blendshapes = [], []
        for i in range(chunks):
            window = padded[None, i * step : i * step + frames_in]
            v, b, state = self._chunk.run({"features": window, "state": state})
            visemes.append(v[0])
            blendshapes.append(b[0])
        return np.concatenate(visemes)[:total], np.concatenate(blendshapes)[:total]

    def prepare_offline(self) -> bool:
        """Load the chunked graph (once; the live loop never needs it). False when it is not shipped."""
        chunk_file = self.path.with_suffix(".chunk.onnx")
        if self._chunk is None and chunk_file.is_file():
            self._chunk = OnnxRuntimeBackend(chunk_file, optimize=False)
        return self._chunk is not None

    def _step(self) -> MouthShape:
        window = np.asarray(self._window, np.float32)[None]
        visemes, blendshapes, self._state = self.backend.run({"features": window, "state": self._state})
        weights = dict(zip(BLENDSHAPES, blendshapes[0].tolist()))
        weights.update({f"viseme_{name}": float(p) for name, p in zip(VISEMES, visemes[0])})
        shape = MouthShape(self._next_t, weights)
        self._next_t += HOP_S
        return shape


def load_learned_model(
    path: Path, backend: str = "onnxruntime", engine_dir: Path | None = None, fp16: bool = True
) -> LearnedMouthModel:
    """The learned model on the requested backend (`auto`, `tensorrt` or `onnxruntime`)."""
    return LearnedMouthModel(open_backend(backend, path, engine_dir or default_engine_dir(), fp16), path)


def default_engine_dir() -> Path:
    cache = os.environ.get("CACHE_DIRECTORY")  # set by systemd's CacheDirectory=
    return Path(cache) / "engines" if cache else Path.home() / ".cache" / "ventriloquist" / "engines"
