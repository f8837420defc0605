"""Inference backends for the learned mouth model: one interface, one module per backend.

`inference.backend: auto` picks TensorRT when it and a CUDA GPU are usable (a Jetson), otherwise
ONNX Runtime on the CPU, and says which and why. Both run the same ONNX file.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

from firmware_app.errors import DeviceError
from firmware_app.inference.base import Backend

log = logging.getLogger(__name__)


def tensorrt_usable() -> tuple[bool, str]:
    """Whether TensorRT, pycuda and a CUDA GPU are all here, and if not, what is missing."""
    for module in ("tensorrt", "pycuda"):
        if importlib.util.find_spec(module) is None:
            return False, f"the Python module {module} is not installed"
    try:
        import pycuda.driver as cuda

        cuda.init()
        if cuda.Device.count() == 0:
            return False, "no CUDA GPU found"
    except Exception as exc:  # the driver raises its own error types when no GPU or driver is present
        return False, f"CUDA is not usable ({exc})"
    return True, "TensorRT and a CUDA GPU are available"


def open_backend(kind: str, onnx_path: Path, engine_dir: Path, fp16: bool = True) -> Backend:
    """The backend the config asks for; `auto` falls back to ONNX Runtime with the reason logged."""
    if kind in ("auto", "tensorrt"):
        usable, why = tensorrt_usable()
        if usable:
            from firmware_app.inference.tensorrt_backend import TensorRTBackend

            log.info("inference backend: TensorRT (%s)", why)
            return TensorRTBackend(onnx_path, engine_dir, fp16)
        if kind == "tensorrt":
            raise DeviceError(
                f"inference.backend is tensorrt, but {why}",
                "on a Jetson install JetPack's TensorRT and pycuda (pip install -e '.[jetson]'), "
                "or set inference.backend: auto to use ONNX Runtime",
            )
        log.info("inference backend: ONNX Runtime on the CPU (TensorRT not used: %s)", why)
    from firmware_app.inference.onnxruntime_backend import OnnxRuntimeBackend

    return OnnxRuntimeBackend(onnx_path)


__all__ = ["Backend", "open_backend", "tensorrt_usable"]
