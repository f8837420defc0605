"""Fake TensorRT 10 Python API (tests only); see tests/fakes/README.md.

Modes, read when called:
  FAKE_TRT_VERSION        reported version (default 10.3.0)
  FAKE_TRT_NO_FP16        a TensorRT 11: no BuilderFlag.FP16, no platform_has_fast_fp16
  FAKE_TRT_BUILD          fail (build returns None) · raise (out of memory) · fail-with-cache
  FAKE_TRT_BAD_CACHE      what a corrupt/foreign timing cache does: raise (default) · none · mismatch
  FAKE_TRT_NO_SAVE        get_timing_cache returns None
  FAKE_TRT_NO_CONTEXT     create_execution_context returns None
  FAKE_TRT_BAD_ADDRESS    set_tensor_address returns False
  FAKE_TRT_OFFSET         added to every output (a wrong engine)
  FAKE_TRT_EXECUTE_FAILS  execute_async_v3 returns False (a GPU fault while running)
  FAKE_TRT_BUILD_LOG      a message the builder sends to its logger at ERROR severity while building
The builder and runtime report through the logger they were given (trt.ILogger.log), as TensorRT
does: a failed build and a refused timing cache each log an ERROR first.
"""

from __future__ import annotations

import enum
import os

import numpy as np
import onnxruntime as ort
import pycuda.driver as _cuda

PREFIX = b"FAKE-ENGINE|"
float32 = "float32"


def _version() -> str:
    return os.environ.get("FAKE_TRT_VERSION", "10.3.0")


def __getattr__(name: str):
    if name == "__version__":
        return _version()
    raise AttributeError(name)


class ILogger:
    """TensorRT's logger interface: subclasses implement log(severity, msg)."""

    class Severity(enum.IntEnum):
        INTERNAL_ERROR = 0
        ERROR = 1
        WARNING = 2
        INFO = 3
        VERBOSE = 4

    def __init__(self) -> None:
        pass

    def log(self, severity: ILogger.Severity, msg: str) -> None:
        raise NotImplementedError


class Logger(ILogger):
    """The stock logger: prints to stdout, as TensorRT's does."""

    WARNING = ILogger.Severity.WARNING

    def __init__(self, severity: int = WARNING) -> None:
        self.severity = severity

    def log(self, severity: ILogger.Severity, msg: str) -> None:
        if severity <= self.severity:
            print(f"[TRT] [{'FEWIV'[severity]}] {msg}", flush=True)


def _report(logger: ILogger, severity: ILogger.Severity, msg: str) -> None:
    assert isinstance(logger, ILogger), f"TensorRT needs an ILogger, got {type(logger).__name__}"
    logger.log(severity, msg)


class MemoryPoolType:
    WORKSPACE = "WORKSPACE"


class _BuilderFlags:
    def __getattr__(self, name: str):
        if name == "FP16" and not os.environ.get("FAKE_TRT_NO_FP16"):
            return "FP16"
        raise AttributeError(name)


BuilderFlag = _BuilderFlags()


def nptype(dtype: str):
    return np.dtype(dtype).type


class TimingCache:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def serialize(self) -> memoryview:
        return memoryview(f"FAKE-TIMING-CACHE {_version()}".encode())


def _valid_cache(data: bytes) -> bool:
    return data in (b"", f"FAKE-TIMING-CACHE {_version()}".encode())


class BuilderConfig:
    def __init__(self, logger: ILogger) -> None:
        self.logger = logger
        self.flags: set[str] = set()
        self.timing_cache: TimingCache | None = None

    def set_memory_pool_limit(self, pool: str, size: int) -> None:
        assert pool == MemoryPoolType.WORKSPACE and size > 0

    def set_flag(self, flag: str) -> None:
        self.flags.add(flag)

    def create_timing_cache(self, data: bytes):
        if not _valid_cache(data):
            _report(self.logger, ILogger.Severity.ERROR, "IBuilderConfig::createTimingCache: corrupt timing cache")
        if not _valid_cache(data) and os.environ.get("FAKE_TRT_BAD_CACHE", "raise") == "raise":
            raise RuntimeError("[TRT] [E] IBuilderConfig::createTimingCache: Error Code 1: corrupt timing cache")
        if not _valid_cache(data) and os.environ.get("FAKE_TRT_BAD_CACHE") == "none":
            return None
        return TimingCache(data)

    def set_timing_cache(self, cache: TimingCache, ignore_mismatch: bool) -> bool:
        if not _valid_cache(cache.data) and not ignore_mismatch:
            return False
        self.timing_cache = cache
        return True

    def get_timing_cache(self):
        return None if os.environ.get("FAKE_TRT_NO_SAVE") else self.timing_cache


class Network:
    def __init__(self) -> None:
        self.model: bytes | None = None


class OnnxParser:
    def __init__(self, network: Network, logger: Logger) -> None:
        self.network = network
        self.num_errors = 0

    def parse(self, model: bytes) -> bool:
        try:
            ort.InferenceSession(model, providers=["CPUExecutionProvider"])
        except Exception:  # noqa: BLE001
            self.num_errors = 1
            return False
        self.network.model = model
        return True

    def get_error(self, i: int) -> str:
        return "In node 0: unsupported graph"


class Builder:
    def __init__(self, logger: ILogger) -> None:
        self.logger = logger
        if os.environ.get("FAKE_TRT_BUILD") == "raise":
            raise RuntimeError("[TRT] [E] createInferBuilder: CUDA out of memory")
        if not os.environ.get("FAKE_TRT_NO_FP16"):
            self.platform_has_fast_fp16 = True

    def create_network(self, flags: int) -> Network:
        assert flags == 0  # explicit batch is the only mode in TensorRT 10
        return Network()

    def create_builder_config(self) -> BuilderConfig:
        return BuilderConfig(self.logger)

    def build_serialized_network(self, network: Network, config: BuilderConfig):
        mode = os.environ.get("FAKE_TRT_BUILD", "")
        cached = config.timing_cache is not None and config.timing_cache.data != b""
        _cuda.record(f"build (fp16: {'FP16' in config.flags}, saved timing cache: {cached})")
        if os.environ.get("FAKE_TRT_BUILD_LOG"):
            _report(self.logger, ILogger.Severity.ERROR, os.environ["FAKE_TRT_BUILD_LOG"])
        if mode == "fail" or (mode == "fail-with-cache" and cached):
            _report(self.logger, ILogger.Severity.ERROR, "IBuilder::buildSerializedNetwork: build failed")
            return None
        return memoryview(PREFIX + _version().encode() + b"|" + network.model)


class _Tracked:
    what = "object"

    def __del__(self) -> None:
        _cuda.record(f"destroy {self.what} (context current: {_cuda.context_is_current()})")
        _cuda.LIVE.pop(id(self), None)


class Runtime(_Tracked):
    what = "runtime"

    def __init__(self, logger: ILogger) -> None:
        self.logger = logger
        _cuda.LIVE[id(self)] = self.what

    def deserialize_cuda_engine(self, data: bytes):
        version = _version().encode()
        if not data.startswith(PREFIX + version + b"|"):
            _report(self.logger, ILogger.Severity.ERROR, "IRuntime::deserializeCudaEngine: engine from another version")
            return None
        return Engine(data[len(PREFIX) + len(version) + 1 :])


class Engine(_Tracked):
    what = "engine"

    def __init__(self, model: bytes) -> None:
        self.session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
        self.tensors = [(i.name, tuple(i.shape)) for i in self.session.get_inputs() + self.session.get_outputs()]
        self.num_io_tensors = len(self.tensors)
        _cuda.LIVE[id(self)] = self.what

    def get_tensor_name(self, i: int) -> str:
        return self.tensors[i][0]

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return dict(self.tensors)[name]

    def get_tensor_dtype(self, name: str) -> str:
        return float32

    def create_execution_context(self):
        return None if os.environ.get("FAKE_TRT_NO_CONTEXT") else ExecutionContext(self.session, dict(self.tensors))


class ExecutionContext(_Tracked):
    what = "execution context"

    def __init__(self, session, shapes: dict[str, tuple[int, ...]]) -> None:
        self.session, self.shapes, self.addresses = session, shapes, {}
        _cuda.LIVE[id(self)] = self.what

    def set_tensor_address(self, name: str, address: int) -> bool:
        if os.environ.get("FAKE_TRT_BAD_ADDRESS"):
            return False
        self.addresses[name] = address
        return True

    def execute_async_v3(self, stream_handle: int) -> bool:
        _cuda._require_context("execute")
        if os.environ.get("FAKE_TRT_EXECUTE_FAILS"):
            return False
        inputs = {
            i.name: np.frombuffer(bytes(_cuda.device_memory(self.addresses[i.name])), np.float32).reshape(
                self.shapes[i.name]
            )
            for i in self.session.get_inputs()
        }
        offset = np.float32(os.environ.get("FAKE_TRT_OFFSET", "0"))
        for output, value in zip(self.session.get_outputs(), self.session.run(None, inputs)):
            _cuda.device_memory(self.addresses[output.name])[:] = (value.astype(np.float32) + offset).tobytes()
        return True
