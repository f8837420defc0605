"""Fake pycuda.driver: one device, a per-thread context stack, allocations that insist on a current
context when freed (as pycuda does for a context from another thread)."""

from __future__ import annotations

import os
import threading

import numpy as np

EVENTS: list[str] = []
LIVE: dict[int, str] = {}  # id -> what, for every allocation / object not yet freed
_stack = threading.local()
_retained = {"count": 0}
_memory: dict[int, bytearray] = {}
_next_address = [0x1000]


def record(event: str) -> None:
    EVENTS.append(event)
    path = os.environ.get("FAKE_CUDA_EVENTS")
    if path:
        with open(path, "a") as f:
            f.write(event + "\n")


class Error(Exception):
    pass


def _current():
    stack = getattr(_stack, "items", [])
    return stack[-1] if stack else None


def context_is_current() -> bool:
    return _current() is not None


def _require_context(what: str) -> None:
    if not context_is_current():
        raise Error(f"cannot {what}: no current context on thread {threading.current_thread().name}")


def init() -> None:
    if os.environ.get("FAKE_CUDA_NO_GPU"):
        raise Error("cuInit failed: no CUDA-capable device is detected")


class device_attribute:  # noqa: N801 - pycuda's spelling
    MULTIPROCESSOR_COUNT = "MULTIPROCESSOR_COUNT"


class Context:
    def __init__(self) -> None:
        self.thread = threading.current_thread()

    def push(self) -> None:
        if not hasattr(_stack, "items"):
            _stack.items = []
        _stack.items.append(self)
        record(f"push on {threading.current_thread().name}")

    def pop(self) -> None:
        if _current() is not self:
            raise Error("pop: this context is not current")
        _stack.items.pop()
        record(f"pop on {threading.current_thread().name}")

    def detach(self) -> None:
        """As pycuda's primary context: released if current (and taken off the stack) or if
        detached on the thread that retained it; from any other thread silently not released."""
        if _retained["count"] <= 0:
            raise Error("detach: context not retained")
        if _current() is self:
            _stack.items.pop()
        elif threading.current_thread() is not self.thread:
            record("detach skipped: out-of-thread context not current")
            return
        _retained["count"] -= 1
        record(f"detach on {threading.current_thread().name}")


class Device:
    def __init__(self, ordinal: int) -> None:
        self.ordinal = ordinal

    @staticmethod
    def count() -> int:
        return 1

    def name(self) -> str:
        return os.environ.get("FAKE_CUDA_NAME", "Orin")

    def compute_capability(self) -> tuple[int, int]:
        return (8, 7)

    def get_attribute(self, attribute: str) -> int:
        assert attribute == device_attribute.MULTIPROCESSOR_COUNT
        return int(os.environ.get("FAKE_CUDA_SMS", "16"))

    def total_memory(self) -> int:
        return int(os.environ.get("FAKE_CUDA_MEMORY_MB", "62800")) << 20

    def retain_primary_context(self) -> Context:
        _retained["count"] += 1
        record("retain primary context")
        return Context()


def retained_contexts() -> int:
    return _retained["count"]


class DeviceAllocation:
    def __init__(self, nbytes: int) -> None:
        _require_context("allocate")
        self.address = _next_address[0]
        _next_address[0] += max(nbytes, 1) + 256
        _memory[self.address] = bytearray(nbytes)
        LIVE[id(self)] = "device buffer"

    def __int__(self) -> int:
        return self.address

    def free(self) -> None:
        _require_context("free device memory")
        _memory.pop(self.address, None)
        LIVE.pop(id(self), None)
        record("free device buffer")


def mem_alloc(nbytes: int) -> DeviceAllocation:
    return DeviceAllocation(nbytes)


def device_memory(address: int) -> bytearray:
    return _memory[address]


class HostAllocation(bytearray):
    def free(self) -> None:
        _require_context("free page-locked memory")
        LIVE.pop(id(self), None)
        record("free host buffer")


def pagelocked_empty(shape, dtype) -> np.ndarray:
    _require_context("allocate page-locked memory")
    allocation = HostAllocation(int(np.prod(shape)) * np.dtype(dtype).itemsize)
    LIVE[id(allocation)] = "host buffer"
    return np.ndarray(shape, dtype, buffer=allocation)


class Stream:
    def __init__(self) -> None:
        _require_context("create a stream")
        self.handle = 0xBEEF
        LIVE[id(self)] = "stream"

    def synchronize(self) -> None:
        _require_context("synchronize")

    def __del__(self) -> None:
        record(f"destroy stream (context current: {context_is_current()})")
        LIVE.pop(id(self), None)


def memcpy_htod_async(device: DeviceAllocation, host: np.ndarray, stream: Stream) -> None:
    _require_context("copy to the device")
    _memory[int(device)][:] = host.tobytes()


def memcpy_dtoh_async(host: np.ndarray, device: DeviceAllocation, stream: Stream) -> None:
    _require_context("copy from the device")
    host[...] = np.frombuffer(bytes(_memory[int(device)]), host.dtype).reshape(host.shape)
