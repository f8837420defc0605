"""`ventriloquist doctor`: one table of what this machine has, each line OK or the fix."""

from __future__ import annotations

import glob
import importlib.util
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from firmware_app.assets import FACE_LANDMARKER, PACKAGE_DIR, resolve_path, sha256_of
from firmware_app.config import Settings
from firmware_app.errors import VentriloquistError


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
    return Check(
        "python packages",
        not missing,
        "all present" if not missing else "missing: " + ", ".join(missing),
        "pip install -e .",
    )


def _face_model(settings: Settings) -> Check:
    path = resolve_path(settings.tracker.model_path)
    if not path.is_file():
        return Check("face model", False, f"{path} not found", "ventriloquist models fetch")
    digest = sha256_of(path)
    ok = digest == FACE_LANDMARKER.sha256
    return Check("face model", ok, f"{path} sha256 {digest[:16]}…", "delete it and run `ventriloquist models fetch`")


def _mouth_model(settings: Settings) -> Check:
    path = resolve_path(settings.model.onnx_path())
    if not path.is_file():
        return Check(
            "mouth model", False, f"{path} not found", "git checkout models/ (the model ships in the repository)"
        )
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
    return Check(
        "cameras",
        bool(devices),
        ", ".join(devices) or "no /dev/video*",
        "plug in a camera (or use file:// as the camera)",
        required=False,
    )


def _display(_: Settings) -> Check:
    display = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    sockets = glob.glob("/tmp/.X11-unix/X*")
    ok = bool(display) or bool(sockets)
    detail = f"DISPLAY={display}" if display else (", ".join(sockets) or "no X server")
    return Check(
        "display", ok, detail, "start the kiosk display session (systemd/) or use output file://", required=False
    )


def _onnxruntime(_: Settings) -> Check:
    try:
        import onnxruntime

        return Check(
            "ONNX Runtime",
            True,
            f"{onnxruntime.__version__} providers: {', '.join(onnxruntime.get_available_providers())}",
        )
    except ImportError:
        return Check("ONNX Runtime", False, "not installed", "pip install onnxruntime")


def _gpu(_: Settings) -> Check:
    if shutil.which("nvidia-smi"):
        result = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, timeout=10
        )
        if result.returncode == 0 and result.stdout.strip():
            return Check("CUDA GPU", True, result.stdout.strip().replace("\n", ", "))
    if os.path.exists("/dev/nvhost-gpu") or os.path.exists("/etc/nv_tegra_release"):
        return Check("CUDA GPU", True, "Jetson integrated GPU")
    return Check(
        "CUDA GPU",
        False,
        "none found",
        "only on a Jetson or a machine with an NVIDIA GPU; ONNX Runtime runs on the CPU meanwhile",
        required=False,
    )


def _tensorrt(_: Settings) -> Check:
    if importlib.util.find_spec("tensorrt") is None:
        return Check(
            "TensorRT",
            False,
            "not importable",
            "on a Jetson: JetPack 6 + a venv with --system-site-packages",
            required=False,
        )
    import tensorrt

    return Check("TensorRT", True, tensorrt.__version__)


def _pycuda(_: Settings) -> Check:
    ok = importlib.util.find_spec("pycuda") is not None
    return Check(
        "pycuda", ok, "importable" if ok else "not installed", "pip install -e '.[jetson]' (needs CUDA)", required=False
    )


def _gstreamer(_: Settings) -> Check:
    from firmware_app.sources.camera import gstreamer_has

    if shutil.which("gst-launch-1.0") is None:
        return Check(
            "GStreamer",
            False,
            "gst-launch-1.0 not installed (csi:// cameras unavailable)",
            "sudo apt-get install gstreamer1.0-tools gstreamer1.0-plugins-base",
            required=False,
        )
    ok = gstreamer_has("nvarguscamerasrc")
    return Check(
        "GStreamer",
        ok,
        "nvarguscamerasrc available" if ok else "no nvarguscamerasrc (csi:// needs a Jetson)",
        "on a Jetson: sudo apt-get install nvidia-l4t-gstreamer",
        required=False,
    )


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
    return Check(
        f"selftest ({backend.name})", result.ok, result.line(), "rebuild the engine: ventriloquist engine build"
    )


def engine_dir_for(settings: Settings) -> Path:
    from firmware_app.mouth.learned import default_engine_dir

    configured = settings.inference.engine_dir
    return default_engine_dir() if configured == "auto" else Path(configured).expanduser()


def build_and_check_engine(settings: Settings, engine_dir: Path | None = None) -> Check:
    """`engine build`: the TensorRT engine built (or loaded from the cache), checked against the
    golden outputs from another thread (as the kiosk's voice thread calls it) and closed; the
    verdict is stored beside the engine, so `inference.backend: auto` never runs one that failed."""
    from firmware_app.inference.parity import FP16_TOLERANCE, FP32_TOLERANCE, golden_path
    from firmware_app.inference.tensorrt_backend import TensorRTBackend, parity_from_another_thread

    model = resolve_path(settings.model.onnx_path())
    fp16 = settings.inference.fp16
    backend = TensorRTBackend(model, engine_dir or engine_dir_for(settings), fp16, rebuild_failed_parity=True)
    try:
        result = parity_from_another_thread(backend, golden_path(model), FP16_TOLERANCE if fp16 else FP32_TOLERANCE)
        backend.record_parity(result.ok, result.line())
    finally:
        backend.close()
    return Check(
        "engine (tensorrt)",
        result.ok,
        result.line(),
        "rebuild after a JetPack or model update: ventriloquist engine build",
    )


# --- `doctor --device`: the Jetson's own parts --------------------------------------------------------

# Orin's GPU, memory and sync nodes under JetPack 6 (after OE4T meta-tegra tegra-configs/devices.csv and
# L4T r36's /dev): what CUDA and TensorRT open. The kiosk unit must allow each one that exists, or CUDA
# is denied and the kiosk runs on the CPU.
JETSON_DEVICE_NODES = (
    "/dev/nvgpu/igpu0/as",
    "/dev/nvgpu/igpu0/channel",
    "/dev/nvgpu/igpu0/ctrl",
    "/dev/nvgpu/igpu0/ctxsw",
    "/dev/nvgpu/igpu0/dbg",
    "/dev/nvgpu/igpu0/nvsched",
    "/dev/nvgpu/igpu0/nvsched_ctrl_fifo",
    "/dev/nvgpu/igpu0/power",
    "/dev/nvgpu/igpu0/prof",
    "/dev/nvgpu/igpu0/prof-ctx",
    "/dev/nvgpu/igpu0/prof-dev",
    "/dev/nvgpu/igpu0/sched",
    "/dev/nvgpu/igpu0/tsg",
    "/dev/nvhost-as-gpu",
    "/dev/nvhost-ctrl-gpu",
    "/dev/nvhost-ctxsw-gpu",
    "/dev/nvhost-dbg-gpu",
    "/dev/nvhost-gpu",
    "/dev/nvhost-nvsched-gpu",
    "/dev/nvhost-nvsched_ctrl_fifo-gpu",
    "/dev/nvhost-power-gpu",
    "/dev/nvhost-prof-ctx-gpu",
    "/dev/nvhost-prof-dev-gpu",
    "/dev/nvhost-prof-gpu",
    "/dev/nvhost-sched-gpu",
    "/dev/nvhost-tsg-gpu",
    "/dev/nvmap",
    "/dev/host1x-fence",
    "/dev/nvsciipc",
    "/dev/nvidia0",
    "/dev/nvidia1",
    "/dev/nvidiactl",
    "/dev/nvidia-modeset",
    "/dev/nvidia-uvm",
)
# The nodes CUDA needs, by pattern (a new nvgpu node in a later L4T is still one). Only these are checked
# against the sandbox; the rest (the camera daemon's ISP/VI/NVCSI nodes, DLA, PVA, the codecs) are
# opened by other processes (nvargus-daemon) or not at all, and are listed for information only.
CUDA_NODE_PATTERNS = ("nvgpu/igpu0/*", "nvhost-gpu", "nvhost-*-gpu", "nvmap", "host1x-fence", "nvsciipc", "dri/*")
DEVICE_CLASSES = {"char-drm": "/dev/dri/", "char-video4linux": "/dev/video"}  # allowed by class, not path
INSTALLED_UNIT = Path("/etc/systemd/system/ventriloquist.service")
ARGUS_SOCKET = Path("/tmp/argus_socket")


def allowed_devices(unit_text: str) -> list[str]:
    return [line.split("=", 1)[1].split()[0] for line in unit_text.splitlines() if line.startswith("DeviceAllow=")]


def blocked_nodes(unit_text: str, present: list[str]) -> list[str]:
    """The nodes in `present` that the unit's DevicePolicy=closed allow-list does not cover."""
    allowed = allowed_devices(unit_text)
    prefixes = tuple(prefix for cls, prefix in DEVICE_CLASSES.items() if cls in allowed)
    return [node for node in present if node not in allowed and not node.startswith(prefixes)]


def _nodes(dev: Path, patterns: tuple[str, ...]) -> set[str]:
    return {str(Path("/dev") / p.relative_to(dev)) for pattern in patterns for p in dev.glob(pattern) if not p.is_dir()}


def present_jetson_nodes(dev: Path) -> tuple[list[str], list[str]]:
    """(the CUDA nodes present, the other Tegra nodes present)."""
    cuda = _nodes(dev, CUDA_NODE_PATTERNS + ("nvidia[0-9]", "nvidiactl", "nvidia-modeset", "nvidia-uvm"))
    return sorted(cuda), sorted(_nodes(dev, ("nvhost-*",)) - cuda)


def device_checks(
    settings: Settings, dev: Path | None = None, unit: Path | None = None, sys: Path | None = None
) -> list[Check]:
    """The L4T release, the GPU nodes, whether the kiosk's sandbox lets CUDA reach them, TensorRT's
    version, the camera (a CSI sensor's VI node read as v4l2://), the camera daemon, the microphones.
    /dev and /sys are the machine's, or those of the fixture tree in $TEGRA_ROOT."""
    from firmware_app.inference.tensorrt_backend import l4t_release, tegra_root

    dev = dev or tegra_root() / "dev"
    sys = sys or tegra_root() / "sys"

    release = l4t_release()
    checks = [
        Check(
            "L4T release",
            release != "none",
            release if release != "none" else "no /etc/nv_tegra_release (not a Jetson)",
            "run this on the Jetson (JetPack 6)",
        )
    ]
    cuda, other = present_jetson_nodes(dev)
    gpu = [n for n in cuda if "gpu" in n]
    checks.append(Check("GPU nodes", bool(gpu), ", ".join(cuda) or "none", "install JetPack 6 (nvgpu driver)"))
    unit = unit or (
        INSTALLED_UNIT if INSTALLED_UNIT.is_file() else PACKAGE_DIR.parent / "systemd" / "ventriloquist.service"
    )
    blocked = blocked_nodes(unit.read_text(), cuda)
    checks.append(
        Check(
            "sandbox devices",
            not blocked,
            f"{unit}: " + (f"blocks {', '.join(blocked)}" if blocked else "allows every CUDA node present"),
            "add DeviceAllow=<node> rw for that CUDA node to systemd/ventriloquist.service, then install.sh again",
        )
    )
    if other:  # information: never a reason to widen the sandbox
        checks.append(
            Check("other Tegra nodes", True, "not used by the kiosk, left outside its sandbox: " + ", ".join(other))
        )
    checks.append(_tensorrt_version())
    checks.append(camera_check(settings, sys))
    checks.append(
        Check(
            "argus socket",
            ARGUS_SOCKET.exists(),
            str(ARGUS_SOCKET) if ARGUS_SOCKET.exists() else "absent (nvargus-daemon not running)",
            "sudo systemctl enable --now nvargus-daemon (csi:// cameras only)",
            required=False,
        )
    )
    checks.append(capture_devices_check(settings))
    return checks


def _tensorrt_version() -> Check:
    """TensorRT 10 or newer: JetPack 6.0's TensorRT 8.6 builds implicit-batch networks from this code,
    which the ONNX parser refuses."""
    from firmware_app.inference import TENSORRT_MIN, tensorrt_version_problem

    if importlib.util.find_spec("tensorrt") is None:
        return Check("TensorRT version", False, "tensorrt does not import", "bash scripts/setup.sh --jetson")
    problem = tensorrt_version_problem()
    import tensorrt

    return Check(
        "TensorRT version",
        problem is None,
        problem or f"{tensorrt.__version__} (>= {TENSORRT_MIN})",
        "upgrade to JetPack 6.1 or newer (TensorRT 10): sudo apt-get install nvidia-jetpack",
    )


def camera_check(settings: Settings, sys: Path = Path("/sys")) -> Check:
    """The configured camera; a CSI sensor's raw VI node configured as v4l2:// gets csi://N suggested."""
    from firmware_app.sources.camera import tegra_vi_sensor

    camera = settings.sources.camera
    nodes = sorted(p.name for p in (sys / "class" / "video4linux").glob("video*"))
    sensors = [f"csi://{n}" for n in (tegra_vi_sensor(node, sys) for node in nodes) if n is not None]
    if camera.startswith("v4l2://"):
        node = Path(camera.removeprefix("v4l2://") or "/dev/video0").name
        sensor = tegra_vi_sensor(node, sys)
        if sensor is not None:
            return Check(
                "camera",
                False,
                f"{camera} is a CSI sensor's raw Bayer VI node (vi-output), which OpenCV cannot read",
                f"set sources.camera: csi://{sensor} in the config, then: systemctl reload ventriloquist",
            )
    return Check("camera", True, camera + (f"; CSI sensors: {', '.join(sensors)}" if sensors else ""))


def capture_devices_check(settings: Settings) -> Check:
    """The microphones PortAudio can open, each as the sources.audio value that picks it."""
    from firmware_app.sources.mic import input_device_names

    try:
        names = input_device_names()
    except VentriloquistError as exc:
        return Check("capture devices", False, exc.cause, exc.fix, required=False)
    listing = ", ".join(f"mic://{name}" for name in names) or "none (no sound card with an input)"
    configured = settings.sources.audio
    hint = ""
    if configured == "mic://default" and any(name != "default" for name in names):
        hint = "; without a sound server mic://default is the onboard card, so name the USB microphone"
    return Check(
        "capture devices",
        bool(names),
        f"sources.audio {configured}; {listing}{hint}",
        "plug in a USB microphone, then set sources.audio to one of the mic://<name> above",
        required=False,
    )


def capture_check(settings: Settings, frames: int) -> Check:
    """`frames` frames from sources.camera (a csi:// camera goes through the GStreamer pipe)."""
    import time

    from firmware_app.sources import open_video_source

    source = open_video_source(settings.sources.camera, settings, realtime=True)
    with source:
        started = time.monotonic()
        got = [f for f in (source.read() for _ in range(frames)) if f is not None]
        seconds = time.monotonic() - started
    shape = "x".join(map(str, got[-1].image.shape[1::-1])) if got else "-"
    return Check(
        f"capture {settings.sources.camera}",
        len(got) == frames,
        f"{len(got)}/{frames} frames of {shape} in {seconds:.1f} s",
        "see the camera fix above; check the cable",
    )
