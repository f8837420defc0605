"""Parity self-test: the shipped golden inputs run through a backend, compared with the ONNX Runtime
outputs recorded when the model was exported (Polygraphy's save-inputs/compare-outputs pattern).

Each step gets the recorded GRU state as input, so an error cannot compound over time and the
numbers measure the backend alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from firmware_app.errors import MissingFileError
from firmware_app.inference.base import Backend

FP32_TOLERANCE = 1e-4
FP16_TOLERANCE = 2e-2  # absolute, on probabilities and blendshape weights in [0, 1]


@dataclass(frozen=True)
class ParityResult:
    backend: str
    steps: int
    max_error: float
    mean_error: float
    tolerance: float

    @property
    def ok(self) -> bool:
        return self.max_error <= self.tolerance

    def line(self) -> str:
        verdict = "OK" if self.ok else "FAIL"
        return (
            f"{verdict}: {self.backend} vs recorded ONNX Runtime outputs over {self.steps} steps: "
            f"max error {self.max_error:.2e}, mean {self.mean_error:.2e}, tolerance {self.tolerance:.0e}"
        )


def golden_path(model_path: Path) -> Path:
    return model_path.with_suffix(".golden.npz")


def check_parity(backend: Backend, golden: Path, tolerance: float) -> ParityResult:
    if not golden.is_file():
        raise MissingFileError(
            f"the golden parity file {golden} is missing", "restore it from the repository (models/)"
        )
    data = np.load(golden)
    errors = []
    for features, state, visemes, blendshapes in zip(
        data["features"], data["state"], data["visemes"], data["blendshapes"]
    ):
        v, b, _ = backend.run({"features": features[None].astype(np.float32), "state": state[None].astype(np.float32)})
        errors.append(np.concatenate([np.abs(v[0] - visemes), np.abs(b[0] - blendshapes)]))
    stacked = np.array(errors)
    return ParityResult(backend.name, len(stacked), float(stacked.max()), float(stacked.mean()), tolerance)
