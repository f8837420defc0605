"""The invisible pixel watermark: invisible, cheap to add, found after re-encoding, scaling, cropping and
brightness changes, and not found in unrelated real video."""

from __future__ import annotations

import io
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from firmware_app.config import Settings
from firmware_app.frames import MouthShape, VideoFrame
from firmware_app.render import Renderer
from firmware_app.render.watermark import Watermarker, appliance_id, detect, short_id

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "faces"
WINDOW = 60  # 2 s at 30 fps


def _clip(size: tuple[int, int] = (1280, 720)) -> list[np.ndarray]:
    """A 2-s moving picture: a smooth random scene panning, so the fold sees changing content."""
    rng = np.random.default_rng(7)
    scene = cv2.GaussianBlur(rng.integers(0, 256, (size[1], size[0] + 2 * WINDOW, 3), dtype=np.uint8), (0, 0), 6)
    scene = cv2.normalize(scene, None, 20, 235, cv2.NORM_MINMAX)
    return [scene[:, 2 * i : 2 * i + size[0]].copy() for i in range(WINDOW)]


def _marked(appliance: str = "test-appliance") -> list[np.ndarray]:
    marker = Watermarker(appliance)
    frames = _clip()
    for frame in frames:
        marker.apply(frame)
    return frames


def _h264(frames: list[np.ndarray], bit_rate: int = 1_000_000) -> list[np.ndarray]:
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt, stream.bit_rate = "yuv420p", bit_rate
        for frame in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")))
        out.mux(stream.encode())
    buffer.seek(0)
    with av.open(buffer) as decoded:
        return [f.to_ndarray(format="bgr24") for f in decoded.decode(video=0)]


def test_mark_is_invisible_and_carries_the_payload():
    clean, marked = _clip(), _marked()
    mse = np.mean((marked[0].astype(np.float32) - clean[0]) ** 2)
    assert 10 * np.log10(255**2 / mse) >= 40
    assert not detect(clean).marked
    found = detect(marked)
    assert found.marked and found.payload == short_id("test-appliance")


@pytest.mark.parametrize(
    "transform",
    [
        _h264,
        lambda fs: [cv2.resize(f, (640, 360), interpolation=cv2.INTER_AREA) for f in fs],
        lambda fs: [f[: int(f.shape[0] * 0.8), int(f.shape[1] * 0.2) :] for f in fs],  # the bottom-left mark gone
        lambda fs: [cv2.convertScaleAbs(f, alpha=1.1) for f in fs],
        lambda fs: [cv2.convertScaleAbs(f, alpha=0.9) for f in fs],
    ],
    ids=["h264-1mbit", "downscale-half", "crop-mark", "brighter", "darker"],
)
def test_mark_survives(transform):
    found = detect(transform(_marked()))
    assert found.marked and found.payload == short_id("test-appliance")


def test_renderer_marks_every_frame_unless_turned_off():
    settings = Settings()
    image = _clip()[0]
    marked = Renderer(settings.renderer, settings.disclosure).render(VideoFrame(image, 0.0, 0), None, MouthShape(0.0))
    assert not np.array_equal(marked, image)
    off = settings.disclosure.model_copy(update={"watermark": False, "enabled": False})
    plain = Renderer(settings.renderer, off).render(VideoFrame(image, 0.0, 0), None, MouthShape(0.0))
    assert np.array_equal(plain, image)


def test_unrelated_real_clips_show_no_mark_on_any_window():
    clips = sorted((SHARED / "videos").rglob("*.mp4"))[:3]
    if not clips:
        pytest.skip("no real clips in ../shared/faces/videos")
    for clip in clips:
        with av.open(str(clip)) as container:
            frames = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
        for start in range(0, max(1, len(frames) - WINDOW + 1), WINDOW):
            found = detect(frames[start : start + WINDOW])
            assert not found.marked, f"{clip.name} window at frame {start}: z {found.confidence:.1f}"


def _windows(frames: list[np.ndarray]) -> list:
    return [detect(frames[s : s + WINDOW]) for s in range(0, len(frames) - WINDOW // 2, WINDOW)]


REAL_TRANSFORMS = {  # each then re-encoded at 1 Mbit/s H.264, as someone sharing the clip would
    "as-is": lambda f: f,
    "half-size": lambda f: cv2.resize(f, (640, 360), interpolation=cv2.INTER_AREA),
    "crop-mark": lambda f: np.ascontiguousarray(f[: int(f.shape[0] * 0.8), int(f.shape[1] * 0.2) :]),
    "brighter": lambda f: cv2.convertScaleAbs(f, alpha=1.1),
    "darker": lambda f: cv2.convertScaleAbs(f, alpha=0.9),
}


@pytest.mark.integration
def test_real_render_survives_reencoding_scaling_cropping_and_brightness(demo_render):
    with av.open(str(demo_render)) as container:
        frames = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
    want = short_id(appliance_id(Settings().disclosure.appliance_id))
    for name, transform in REAL_TRANSFORMS.items():
        found = _windows(_h264([transform(f) for f in frames]))
        hits = sum(w.marked and w.payload == want for w in found)
        assert hits >= 0.95 * len(found), (
            f"{name}: {hits}/{len(found)} windows, z {[round(w.confidence) for w in found]}"
        )


@pytest.mark.integration
def test_render_then_verify_finds_the_mark_and_real_clips_do_not(demo_render, tmp_path):
    from tests.conftest import cli

    result = cli("verify", str(demo_render))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "watermark: found, synthetic" in result.stdout
    (tmp_path / "junk.mp4").write_bytes(b"not a video")
    bad = cli("verify", str(tmp_path / "junk.mp4"))
    assert bad.returncode not in (0, 1) and "Traceback" not in bad.stderr and "not a video" in bad.stderr
    clips = sorted((SHARED / "videos").rglob("*.mp4"))[:1]
    if clips:
        assert cli("verify", str(clips[0])).returncode == 1
