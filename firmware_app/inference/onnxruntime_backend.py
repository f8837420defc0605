"""ONNX Runtime on the CPU: every machine without a usable GPU (development, CI, fallback)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from firmware_app.errors import MissingFileError, ModelError
from firmware_app.inference.base import Backend

MODEL_FIX = (
    "restore the shipped model (git checkout firmware_app/assets/models/mouth.onnx) or retrain it "
    "(see models/README.md)"
)


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def __init__(self, onnx_path: Path, threads: int = 1, optimize: bool = True) -> None:
        if not onnx_path.is_file():
            raise MissingFileError(f"the mouth model {onnx_path} does not exist", MODEL_FIX)
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads  # one 10 ms step is tiny; threads only add latency
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        if not optimize:  # large unrolled graphs: optimising costs more time than it saves
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        try:
            self.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises private exception types for unreadable files
            raise ModelError(
                f"the mouth model {onnx_path} cannot be loaded: {str(exc).splitlines()[0]}", MODEL_FIX
            ) from None
        self.input_shapes = {i.name: tuple(i.shape) for i in self.session.get_inputs()}
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)

    def run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.session.run(None, inputs)
