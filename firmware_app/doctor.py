"""`ventriloquist doctor`: one table of what this machine has, each line OK or the fix."""

from __future__ import annotations

import glob
import importlib.util
import os
import shutil
import subprocess
from dataclasses import dataclass
from typing import Callable

from firmware_app.assets import FACE_LANDMARKER, resolve_path, sha256_of
from firmware_app.config import Settings


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True  # a missing optional part (GPU, camera on a dev box) does not fail doctor


def run_checks(settings: Settings) -> list[Check]:
    probes: list[Callable[[Settings], Check]] = [
        _python_packages,
        _face_model,
        _mouth_model,
        _portaudio,
        _microphones,
        _cameras,
        _display,
        _onnxruntime,
        _gpu,
        _tensorrt,
        _pycuda,
        _gstreamer,
    ]
    checks = []
    for probe in probes:
        try:
            checks.append(probe(settings))
        except Exception as exc:  # a probe that breaks is itself a finding, not a crash
            checks.append(Check(probe.__name__.strip("_"), False, f"check failed: {exc}", "report this"))
    return checks


def print_report(checks: list[Check]) -> None:
    width = max(len(c.name) for c in checks)
    for c in checks:
        status = "OK" if c.ok else ("MISSING" if c.required else "absent")
        line = f"{c.name:<{width}}  {status:<7}  {c.detail}"
        if not c.ok and c.fix:
            line += f"\n{'':<{width}}  {'':<7}  fix: {c.fix}"
        print(line)


def _python_packages(_: Settings) -> Check:
    needed = ["numpy", "cv2", "av", "yaml", "pydantic", "mediapipe", "sounddevice"]
    missing = [m for m in needed if importlib.util.find_spec(m) is None]
    return Check("python packages", not missing, "all present" if not missing else "missing: " + ", ".join(missing), "pip install -e .")


def _face_model(settings: Settings) -> Check:
    path = resolve_path(settings.tracker.model_path)
    if not path.is_file():
        return Check("face model", False, f"{path} not found", "ventriloquist models fetch")
    digest = sha256_of(path)
    ok = digest == FACE_LANDMARKER.sha256
    return Check("face model", ok, f"{path} sha256 {digest[:16]}…", "delete it and run `ventriloquist models fetch`")


def _mouth_model(settings: Settings) -> Check:
    path = resolve_path(settings.model.path)
    if not path.is_file():
        return Check("mouth model", False, f"{path} not found", "git checkout models/ (the model ships in the repository)")
    return Check("mouth model", True, f"{path} sha256 {sha256_of(path)[:16]}…")


def _portaudio(_: Settings) -> Check:
    try:
        import sounddevice

        return Check("PortAudio", True, sounddevice.get_portaudio_version()[1])
    except OSError:
        return Check("PortAudio", False, "library not found", "sudo apt-get install libportaudio2")


def _microphones(_: Settings) -> Check:
    from firmware_app.sources.mic import input_device_names

    names = input_device_names()
    return Check("microphones", bool(names), ", ".join(names) or "none", "plug in a USB microphone", required=False)


def _cameras(_: Settings) -> Check:
    devices = sorted(glob.glob("/dev/video*"))
    return Check("cameras", bool(devices), ", ".join(devices) or "no /dev/video*", "plug in a camera (or use file:// as the camera)", required=False)


def _display(_: Settings) -> Check:
    display = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    sockets = glob.glob("/tmp/.X11-unix/X*")
    ok = bool(display) or bool(sockets)
    detail = f"DISPLAY={display}" if display else (", ".join(sockets) or "no X server")
    return Check("display", ok, detail, "start the kiosk display session (systemd/) or use output file://", required=False)


def _onnxruntime(_: Settings) -> Check:
    try:
        import onnxruntime

        return Check("ONNX Runtime", True, f"{onnxruntime.__version__} providers: {', '.join(onnxruntime.get_available_providers())}")
    except ImportError:
        return Check("ONNX Runtime", False, "not installed", "pip install onnxruntime")


def _gpu(_: Settings) -> Check:
    if shutil.which("nvidia-smi"):
        result = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, timeout=10)
        if result.returncode == 0 and result.stdout.strip():
            return Check("CUDA GPU", True, result.stdout.strip().replace("\n", ", "))
    if os.path.exists("/dev/nvhost-gpu") or os.path.exists("/etc/nv_tegra_release"):
        return Check("CUDA GPU", True, "Jetson integrated GPU")
    return Check("CUDA GPU", False, "none found", "only on a Jetson or a machine with an NVIDIA GPU; ONNX Runtime runs on the CPU meanwhile", required=False)


def _tensorrt(_: Settings) -> Check:
    if importlib.util.find_spec("tensorrt") is None:
        return Check("TensorRT", False, "not importable", "on a Jetson: JetPack 6 + a venv with --system-site-packages", required=False)
    import tensorrt

    return Check("TensorRT", True, tensorrt.__version__)


def _pycuda(_: Settings) -> Check:
    ok = importlib.util.find_spec("pycuda") is not None
    return Check("pycuda", ok, "importable" if ok else "not installed", "pip install -e '.[jetson]' (needs CUDA)", required=False)


def _gstreamer(_: Settings) -> Check:
    from firmware_app.sources.camera import opencv_has_gstreamer

    ok = opencv_has_gstreamer()
    return Check("OpenCV GStreamer", ok, "yes" if ok else "no (csi:// cameras unavailable)", "use JetPack's OpenCV for CSI cameras", required=False)


def selftest(settings: Settings) -> Check:
    """The mouth model on the configured backend (building the TensorRT engine if needed), checked
    against the golden outputs recorded at export."""
    from firmware_app.inference.parity import FP16_TOLERANCE, FP32_TOLERANCE, check_parity, golden_path
    from firmware_app.mouth import create_mouth_model

    model = create_mouth_model(settings.model.model_copy(update={"kind": "learned"}), settings.inference)
    backend = model.backend
    tolerance = FP16_TOLERANCE if backend.name == "tensorrt" and settings.inference.fp16 else FP32_TOLERANCE
    try:
        result = check_parity(backend, golden_path(model.path), tolerance)
    finally:
        backend.close()
    return Check(f"selftest ({backend.name})", result.ok, result.line(), "rebuild the engine: ventriloquist engine build")
