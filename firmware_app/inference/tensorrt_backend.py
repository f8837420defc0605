"""TensorRT 10 on a Jetson: the ONNX model compiled to an engine (cached, see engine_cache.py) and run
with pycuda — page-locked host buffers and device buffers allocated once, `set_tensor_address` +
`execute_async_v3` on one stream, and a CUDA context pushed around each call so the pipeline's
inference thread can use it.

Not executable on machines without TensorRT and a GPU; its cache logic is tested everywhere and
its execution is checked on the device by `ventriloquist doctor --selftest`.
"""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path

import numpy as np

from firmware_app.errors import ModelError
from firmware_app.fileutil import write_atomically
from firmware_app.inference.base import Backend
from firmware_app.inference.engine_cache import EngineCache, EngineKey

log = logging.getLogger(__name__)

WORKSPACE_MB = 256


def engine_key(onnx_path: Path, fp16: bool, input_shapes: dict[str, tuple[int, ...]]) -> EngineKey:
    import pycuda.driver as cuda
    import tensorrt as trt

    device = cuda.Device(0)
    major, minor = device.compute_capability()
    return EngineKey(
        onnx_sha256=hashlib.sha256(onnx_path.read_bytes()).hexdigest(),
        tensorrt_version=trt.__version__,
        gpu_name=device.name(),
        compute_capability=f"{major}.{minor}",
        precision="fp16" if fp16 else "fp32",
        input_shapes=tuple(sorted(input_shapes.items())),
    )


def build_engine(onnx_path: Path, fp16: bool, timing_cache: Path, workspace_mb: int = WORKSPACE_MB) -> bytes:
    """Compile the ONNX file; parser errors are reported in full."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ModelError(f"TensorRT cannot parse {onnx_path}: {errors}", "re-export the model with models/export.py")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    if fp16 and builder.platform_has_fast_fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    cache = config.create_timing_cache(timing_cache.read_bytes() if timing_cache.is_file() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    log.info("building TensorRT engine for %s (%s); this takes a minute on first boot", onnx_path.name, "fp16" if fp16 else "fp32")
    started = time.monotonic()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ModelError(f"TensorRT could not build an engine for {onnx_path}", "see the log above; check free memory")
    write_atomically(timing_cache, bytes(config.get_timing_cache().serialize()))
    log.info("engine built in %.1f s", time.monotonic() - started)
    return bytes(serialized)


class TensorRTBackend(Backend):
    name = "tensorrt"

    def __init__(self, onnx_path: Path, engine_dir: Path, fp16: bool = True) -> None:
        import pycuda.driver as cuda
        import tensorrt as trt

        from firmware_app.inference.onnxruntime_backend import OnnxRuntimeBackend

        reference = OnnxRuntimeBackend(onnx_path)  # the graph's shapes and metadata, read once
        self.input_shapes, self.output_names = reference.input_shapes, reference.output_names
        self.metadata = reference.metadata
        cuda.init()
        self._cuda = cuda
        self._context = cuda.Device(0).make_context()
        try:
            runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
            cache = EngineCache(engine_dir, onnx_path.stem)
            key = engine_key(onnx_path, fp16, self.input_shapes)
            self.engine = cache.get_or_build(
                key,
                build=lambda: build_engine(onnx_path, fp16, engine_dir / "timing.cache"),
                deserialize=runtime.deserialize_cuda_engine,
            )
            self.execution = self.engine.create_execution_context()
            self.stream = cuda.Stream()
            self.host: dict[str, np.ndarray] = {}
            self.device: dict[str, object] = {}
            for i in range(self.engine.num_io_tensors):
                name = self.engine.get_tensor_name(i)
                shape = tuple(self.engine.get_tensor_shape(name))
                dtype = trt.nptype(self.engine.get_tensor_dtype(name))
                self.host[name] = cuda.pagelocked_empty(shape, dtype)
                self.device[name] = cuda.mem_alloc(self.host[name].nbytes)
                self.execution.set_tensor_address(name, int(self.device[name]))
        finally:
            self._context.pop()

    def run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        cuda = self._cuda
        self._context.push()
        try:
            for name, value in inputs.items():
                np.copyto(self.host[name], value)
                cuda.memcpy_htod_async(self.device[name], self.host[name], self.stream)
            if not self.execution.execute_async_v3(self.stream.handle):
                raise ModelError("TensorRT inference failed", "run `ventriloquist doctor --selftest`")
            for name in self.output_names:
                cuda.memcpy_dtoh_async(self.host[name], self.device[name], self.stream)
            self.stream.synchronize()
            return [self.host[name].copy() for name in self.output_names]
        finally:
            self._context.pop()

    def close(self) -> None:
        if getattr(self, "_context", None) is None:
            return
        self._context.push()
        try:
            for buffer in self.device.values():
                buffer.free()
            self.device.clear()
        finally:
            self._context.pop()
            self._context.detach()
            self._context = None
