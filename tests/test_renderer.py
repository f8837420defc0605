"""The renderer on a real face: opens, closes, leaves the rest of the picture alone, discloses."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from firmware_app.config import DisclosureSettings, RendererSettings, Settings
from firmware_app.face.tracker import FaceTracker
from firmware_app.frames import MouthShape, VideoFrame
from firmware_app.render import Renderer
from firmware_app.render.mouth import measure_mouth, render_mouth
from firmware_app.sources import open_video_source

from conftest import PORTRAIT


@pytest.fixture(scope="module")
def portrait():
    with open_video_source(f"file://{PORTRAIT}", Settings(), realtime=False) as source:
        frame = source.read()
    with FaceTracker(Settings().tracker) as tracker:
        face = tracker.track(frame)
    assert face is not None
    return frame, face


def measured_gap(image: np.ndarray) -> float:
    with FaceTracker(Settings().tracker) as tracker:
        face = tracker.track(VideoFrame(image, 0.0, 0))
    g = measure_mouth(face)
    upper, lower = g.current_opening(np.zeros(1))
    return float(lower[0] - upper[0]) / g.face_height


def test_opening_follows_the_command_and_closes_again(portrait):
    frame, face = portrait
    gaps = [measured_gap(render_mouth(frame.image, face, opening, (24, 22, 52))) for opening in (0.0, 0.04, 0.08, 0.12)]
    assert gaps == sorted(gaps), gaps
    assert gaps[0] < 0.02 and gaps[-1] > 0.07, gaps


def test_an_open_mouth_can_be_closed(portrait):
    frame, face = portrait
    opened = render_mouth(frame.image, face, 0.12, (24, 22, 52))
    with FaceTracker(Settings().tracker) as tracker:
        open_face = tracker.track(VideoFrame(opened, 0.0, 0))
    closed = render_mouth(opened, open_face, 0.0, (24, 22, 52))
    assert measured_gap(closed) < 0.5 * measured_gap(opened)


def test_warp_stays_in_the_lower_face(portrait):
    frame, face = portrait
    out = render_mouth(frame.image, face, 0.12, (24, 22, 52))
    changed = np.argwhere(np.abs(out.astype(int) - frame.image).max(axis=2) > 0)
    eyes_y = face.landmarks[[33, 263], 1].max()
    chin_y = face.landmarks[152, 1]
    assert changed[:, 0].min() > eyes_y
    assert changed[:, 0].max() < chin_y + 0.25 * (chin_y - eyes_y) * 2


@pytest.mark.parametrize(
    "controls",
    [
        {"headYaw": 12.0, "headPitch": 5.0},
        {"headRoll": 4.0, "browInnerUp": 0.6},
        {"mouthPucker": 0.8, "mouthFunnel": 0.4},
    ],
    ids=["head turn", "head roll and brows", "lips rounded"],
)
def test_the_warp_takes_every_landmark_where_the_rig_sends_it(portrait, controls):
    """Warped through the rig, a picture whose pixels hold their own coordinates shows, at each
    landmark's target, the coordinates the landmark came from (within a pixel or two)."""
    from firmware_app.render.rig import FaceFrame, rig_targets
    from firmware_app.render.warp import warp_landmarks

    frame, face = portrait
    height, width = frame.image.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    coordinates = np.dstack([xs, ys, np.zeros_like(xs)])
    pose = rig_targets(face, controls)
    current, target = pose.pinned(face)
    warped = warp_landmarks(coordinates.copy(), current, target, FaceFrame.of(face).scale)
    where = target.astype(np.float32)[None]
    came_from = cv2.remap(warped, where[..., 0], where[..., 1], cv2.INTER_LINEAR)[0, :, :2]
    mesh = int((~pose.free).sum())  # the pinned landmarks come first, then the halo around the face
    error = np.linalg.norm(came_from - current, axis=1)[:mesh]
    assert (np.linalg.norm(target - current, axis=1)[:mesh] > 0.5).sum() > 20, "the controls should move the face"
    assert np.median(error) < 0.75 and np.percentile(error, 95) < 3.5, (
        np.median(error),
        np.percentile(error, 95),
        error.max(),
    )


def test_no_face_leaves_the_picture_untouched_but_disclosed(portrait):
    frame, _ = portrait
    shape = MouthShape(0.0, {"jawOpen": 1.0})
    marked = Renderer(RendererSettings(), DisclosureSettings(watermark=False)).render(frame, None, shape)
    plain = Renderer(RendererSettings(), DisclosureSettings(enabled=False, watermark=False)).render(frame, None, shape)
    assert np.array_equal(plain, frame.image)
    difference = np.abs(marked.astype(int) - plain).max(axis=2) > 0
    rows, cols = np.nonzero(difference)
    assert rows.min() > frame.image.shape[0] * 0.8 and cols.max() < frame.image.shape[1] * 0.3  # bottom-left
