"""Puppet and mirror modes end to end, and the renderer's face handling (lost, several, sizes).

A scripted performer clip (`calibration.performer`: a real face turning, nodding and blinking)
stands in for the camera; MediaPipe re-measures what the appliance rendered."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from calibration.fidelity import Measurer, eye_opening, lip_gap
from calibration.performer import script, write_performer_clip
from firmware_app.config import DisclosureSettings, RendererSettings, Settings, TrackerSettings
from firmware_app.face.expression import IdleAnimator
from firmware_app.face.smoothing import OneEuroFilter
from firmware_app.face.tracker import FaceTracker
from firmware_app.frames import MouthShape, VideoFrame
from firmware_app.render import Renderer
from firmware_app.sources.base import fit_frame

from conftest import PORTRAIT, SPEECH, cli
from media import video_frames

FPS = 30.0


@pytest.fixture(scope="module")
def performer(tmp_path_factory):
    return write_performer_clip(tmp_path_factory.mktemp("performer") / "performer.mp4", seconds=8.0)


def measure_clip(path):
    with Measurer() as measurer:
        return [measurer.face(frame) for frame in video_frames(path)]


def scripted(n: int, key: str) -> np.ndarray:
    return np.array([script((i / FPS) % 8.0)[key] for i in range(n)])


@pytest.mark.integration
def test_performer_drives_the_puppets_head_and_blinks(performer, tmp_path):
    out = tmp_path / "puppet.mp4"
    result = cli(
        "render",
        "--audio",
        str(SPEECH),
        "--face",
        str(PORTRAIT),
        "--performer",
        str(performer),
        "--out",
        str(out),
        "--size",
        "960x540",
    )
    assert result.returncode == 0, result.stderr
    faces = measure_clip(out)
    assert all(f is not None for f in faces)
    yaw = np.array([f.pose[0] for f in faces])
    assert np.corrcoef(yaw, scripted(len(faces), "headYaw"))[0, 1] > 0.9  # the puppet turns with the performer
    assert 5.0 < np.ptp(yaw) < 40.0
    eyes = np.array([eye_opening(f) for f in faces])
    blink = scripted(len(faces), "eyeBlinkLeft")
    assert eyes[blink > 0.8].mean() < 0.4 * eyes[blink < 0.01].mean()  # and blinks when the performer does


@pytest.mark.integration
def test_with_nobody_there_the_puppet_lives_on_its_own(demo_render):
    faces = measure_clip(demo_render)
    eyes = np.array([eye_opening(f) for f in faces])
    shut = eyes < 0.5 * np.median(eyes)
    blinks = int(np.sum(shut[1:] & ~shut[:-1]))
    seconds = len(faces) / FPS
    assert 1 <= blinks <= seconds / 1.5, f"{blinks} blinks in {seconds:.1f} s"
    yaw = np.array([f.pose[0] for f in faces])
    assert 0.5 < np.ptp(yaw) < 8.0  # a slight sway, not a still photo and not a shaking head


def test_idle_blinks_come_at_natural_intervals():
    idle = IdleAnimator(Settings().puppet)
    closed = [idle.controls(i / 100, MouthShape(i / 100, {}))["eyeBlinkLeft"] > 0.5 for i in range(6000)]
    starts = [i / 100 for i in range(1, 6000) if closed[i] and not closed[i - 1]]
    gaps = np.diff(starts)
    assert 8 <= len(starts) <= 30  # a minute: people blink roughly every 2-6 s
    assert np.median(gaps) > 1.5 and gaps.min() >= 0.3
    again = IdleAnimator(Settings().puppet)  # seeded: renders repeat exactly
    assert [again.controls(i / 100, MouthShape(i / 100, {}))["headYaw"] for i in range(500)] == [
        IdleAnimator(Settings().puppet).controls(i / 100, MouthShape(i / 100, {}))["headYaw"] for i in range(500)
    ]


@pytest.mark.integration
def test_mirror_mode_replaces_the_visitors_mouth_and_keeps_their_head(performer, tmp_path):
    out = tmp_path / "mirror.mp4"
    config = tmp_path / "mirror.yaml"
    config.write_text(
        "mode: mirror\n"
        f"sources: {{audio: 'file://{SPEECH}', camera: 'file://{performer}', pace: fast}}\n"
        "video: {width: 960, height: 540}\n"
        f"output: {{uri: 'file://{out}'}}\n"
    )
    result = cli("run", "--config", str(config))
    assert result.returncode == 0, result.stderr
    rendered = video_frames(out)
    faces = measure_clip(out)
    yaw = np.array([f.pose[0] for f in faces])
    assert np.corrcoef(yaw, scripted(len(faces), "headYaw"))[0, 1] > 0.95  # the visitor's own head motion
    gaps = np.array([lip_gap(f) for f in faces])
    assert np.percentile(gaps, 90) > 3 * max(np.percentile(gaps, 10), 0.005)  # their mouth now speaks
    # no swimming: above the mouth the picture is the visitor's, frame for frame
    source = [fit_frame(f, (960, 540)) for f in video_frames(performer)]
    for i in (30, 100, 200):
        face = faces[i]
        top = int(face.landmarks[10, 1])
        nose = int(face.landmarks[2, 1]) - 5
        x0, x1 = (int(v) for v in np.percentile(face.landmarks[:, 0], [10, 90]))
        difference = np.abs(rendered[i][top:nose, x0:x1].astype(int) - source[i % len(source)][top:nose, x0:x1]).mean()
        assert difference < 6, f"frame {i}: the upper face differs by {difference:.1f} grey levels"


def test_one_euro_filter_steadies_a_still_face_and_follows_a_moving_one():
    rng = np.random.default_rng(0)
    still = np.full((478, 2), 300.0)
    steady = OneEuroFilter(1.2, 0.02)
    out = np.array([steady(still + rng.normal(0, 1.0, still.shape), i / 30) for i in range(90)])
    assert out[30:].std(axis=0).mean() < 0.35  # jitter of 1 px cut to a third or less
    moving = OneEuroFilter(1.2, 0.02)
    for i in range(60):
        position = still + 10.0 * i  # 300 px/s
        smoothed = moving(position, i / 30)
    assert np.abs(smoothed - position).mean() < 10.0  # within one frame's motion


@pytest.fixture(scope="module")
def portrait_face():
    image = fit_frame(cv2.imread(str(PORTRAIT)), (1280, 720))
    with FaceTracker(TrackerSettings(smoothing=False)) as tracker:
        face = tracker.track(VideoFrame(image, 0.0, 0))
    assert face is not None
    return image, face


def test_a_lost_face_fades_back_to_the_untouched_picture(portrait_face):
    image, face = portrait_face
    renderer = Renderer(RendererSettings(fade_frames=6), DisclosureSettings(enabled=False, watermark=False))
    speaking = MouthShape(0.0, {"jawOpen": 1.0})
    differences = []
    for i in range(12):
        frame = VideoFrame(image, i / FPS, i)
        out = renderer.render(frame, face if i < 3 else None, speaking)
        differences.append(float(np.abs(out.astype(int) - image).mean()))
    assert differences[2] > 0.05
    fading = differences[3:9]
    assert all(a >= b for a, b in zip(fading, fading[1:])) and fading[0] > 0  # fades, never snaps
    assert differences[9:] == [0.0, 0.0, 0.0]  # then the untouched frame


def faces_on_canvas(image: np.ndarray, placements: list[tuple[int, int]]) -> np.ndarray:
    """A 1280x720 frame with the portrait's face pasted at (x, size) for each placement."""
    canvas = np.full((720, 1280, 3), 200, np.uint8)
    head = image[100:420, 520:840]
    for x, size in placements:
        canvas[200 : 200 + size, x : x + size] = cv2.resize(head, (size, size))
    return canvas


def test_the_largest_or_the_central_face_is_chosen(portrait_face):
    image, _ = portrait_face
    canvas = faces_on_canvas(image, [(280, 330), (640, 250)])  # larger left of centre, smaller right of it
    for pick, expected_x in (("largest", 280 + 165), ("centre", 640 + 125)):
        with FaceTracker(TrackerSettings(smoothing=False, pick=pick, max_faces=3)) as tracker:
            face = tracker.track(VideoFrame(canvas, 0.0, 0))
        assert face is not None
        assert abs(face.landmarks[:, 0].mean() - expected_x) < 60, pick


def test_a_face_at_the_edge_of_a_wide_frame_is_found(portrait_face):
    image, _ = portrait_face
    canvas = faces_on_canvas(image, [(930, 330)])  # outside the middle square MediaPipe looks at first
    with FaceTracker(TrackerSettings(smoothing=False, hold_frames=0)) as tracker:
        found = [tracker.track(VideoFrame(canvas, i / FPS, i)) for i in range(4)]
    assert any(f is not None for f in found[:3])
    assert found[3] is not None and abs(found[3].landmarks[:, 0].mean() - 1095) < 60  # and then followed


@pytest.mark.parametrize("face_share", [0.2, 0.95])
def test_small_and_frame_filling_faces_are_animated(portrait_face, face_share):
    image, face = portrait_face
    scale = face_share * 720 / face.height
    resized = cv2.resize(
        image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    )
    centre = (face.landmarks[:, :2].mean(axis=0) * scale).astype(int)
    canvas = cv2.copyMakeBorder(resized, 720, 720, 1280, 1280, cv2.BORDER_REPLICATE)
    x0, y0 = centre[0] + 1280 - 640, centre[1] + 720 - 360
    frame = np.ascontiguousarray(canvas[y0 : y0 + 720, x0 : x0 + 1280])
    renderer = Renderer(RendererSettings(), DisclosureSettings(enabled=False))
    with Measurer() as measurer:
        tracked = measurer.face(frame)
        assert tracked is not None
        gaps = [
            lip_gap(measurer.face(renderer.render(VideoFrame(frame, 0, 0), tracked, MouthShape(0, {"jawOpen": a}))))
            for a in (0.0, 0.5, 1.0)
        ]
    assert gaps == sorted(gaps) and gaps[2] - gaps[0] > 0.06, gaps


def test_every_model_blendshape_moves_the_rig(portrait_face):
    from firmware_app.render.rig import CONTROLS, rig_targets
    from firmware_app.shapes import BLENDSHAPES

    _, face = portrait_face
    rest = rig_targets(face, {}).targets
    for name in BLENDSHAPES:
        if name in ("jawOpen", "mouthClose"):  # the lip gap: render.mouth
            continue
        assert name in CONTROLS, name
        moved = rig_targets(face, {name: 1.0}).targets
        assert np.abs(moved - rest).max() > 0.5, f"{name} moves nothing"
