"""Inference backends for the learned mouth model: one interface, one module per backend.

`inference.backend: auto` picks TensorRT when it and a CUDA GPU are usable (a Jetson), otherwise
ONNX Runtime on the CPU, and says which and why. Both run the same ONNX file.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

from firmware_app.errors import DeviceError, VentriloquistError
from firmware_app.inference.base import Backend

log = logging.getLogger(__name__)

TENSORRT_MIN = 10  # the code builds explicit-batch networks with create_network(0): TensorRT 10's only mode


def tensorrt_version_problem() -> str | None:
    """Why the installed TensorRT cannot be used (too old), or None. JetPack 6.0 ships 8.6, where
    create_network(0) is an implicit-batch network the ONNX parser refuses."""
    import tensorrt

    version = str(getattr(tensorrt, "__version__", "0"))
    try:
        major = int(version.split(".")[0])
    except ValueError:
        return f"TensorRT reports an unreadable version {version!r}"
    if major < TENSORRT_MIN:
        return f"TensorRT {version} is older than {TENSORRT_MIN} (JetPack 6.0 ships 8.6; JetPack 6.1+ has 10)"
    return None


def tensorrt_usable() -> tuple[bool, str]:
    """Whether TensorRT, pycuda and a CUDA GPU are all here, and if not, what is missing."""
    for module in ("tensorrt", "pycuda"):
        if importlib.util.find_spec(module) is None:
            return False, f"the Python module {module} is not installed"
    try:
        problem = tensorrt_version_problem()
    except Exception as exc:  # noqa: BLE001 - a broken JetPack install: say so, run on the CPU
        return False, f"TensorRT does not import ({type(exc).__name__}: {exc})"
    if problem is not None:
        return False, problem
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
            try:
                return _open_tensorrt(onnx_path, engine_dir, fp16, why)
            except Exception as exc:  # noqa: BLE001 - build, parse, permission, memory: all mean "use the CPU"
                if kind == "tensorrt":
                    raise as_device_error(exc) from None
                why = f"TensorRT failed to start: {describe_failure(exc)}"
                log.warning("inference backend: ONNX Runtime on the CPU (%s)", why)
        elif kind == "tensorrt":
            raise DeviceError(
                f"inference.backend is tensorrt, but {why}",
                "on a Jetson install JetPack's TensorRT and pycuda (pip install -e '.[jetson]'), "
                "or set inference.backend: auto to use ONNX Runtime",
            )
        elif "older than" in why:  # a Jetson that has TensorRT, just too old: not a quiet fallback
            log.warning("inference backend: ONNX Runtime on the CPU (TensorRT not used: %s)", why)
        else:
            log.info("inference backend: ONNX Runtime on the CPU (TensorRT not used: %s)", why)
    from firmware_app.inference.onnxruntime_backend import OnnxRuntimeBackend

    return OnnxRuntimeBackend(onnx_path)


def _open_tensorrt(onnx_path: Path, engine_dir: Path, fp16: bool, why: str) -> Backend:
    from firmware_app.inference.tensorrt_backend import TensorRTBackend

    backend = TensorRTBackend(onnx_path, engine_dir, fp16)
    log.info("inference backend: TensorRT (%s)", why)
    return backend


def describe_failure(exc: Exception) -> str:
    return exc.cause if isinstance(exc, VentriloquistError) else f"{type(exc).__name__}: {exc}"


def as_device_error(exc: Exception) -> VentriloquistError:
    """A forced TensorRT that fails: the error it raised if it is ours, else one clear paragraph."""
    if isinstance(exc, VentriloquistError):
        return exc
    return DeviceError(
        f"inference.backend is tensorrt, but TensorRT failed to start ({describe_failure(exc)})",
        "check free memory and that /var/cache/ventriloquist is writable, run `ventriloquist doctor --device`, "
        "or set inference.backend: auto to fall back to ONNX Runtime",
    )


__all__ = [
    "TENSORRT_MIN",
    "Backend",
    "as_device_error",
    "describe_failure",
    "open_backend",
    "tensorrt_usable",
    "tensorrt_version_problem",
]
