"""Face tracking with MediaPipe FaceLandmarker: 478 landmarks and 52 blendshapes per face.

The largest (or most central) face wins; a face lost for a moment is held for `hold_frames` so
the render does not flicker; a still image is tracked once; landmarks of moving video are
smoothed with a One Euro filter so the animated face does not swim.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import cv2
import numpy as np

from firmware_app.assets import resolve_path, verify_model_file
from firmware_app.config import TrackerSettings
from firmware_app.errors import ModelError
from firmware_app.face.smoothing import OneEuroFilter
from firmware_app.frames import Face, VideoFrame
from firmware_app.resource import Resource

log = logging.getLogger(__name__)

os.environ.setdefault("GLOG_minloglevel", "2")


@contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """MediaPipe's C++ start-up chatter goes straight to fd 2; keep it out of the journal."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class FaceTracker(Resource):
    def __init__(self, settings: TrackerSettings) -> None:
        self.settings = settings
        self.model_path = resolve_path(settings.model_path)
        self._landmarker = None
        self._last_face: Face | None = None
        self._frames_since_seen = 0
        self._last_timestamp_ms = -1
        self._window_centre: np.ndarray | None = None  # where the last face was: the next look centres there
        self._search_step = 0
        # the renderer's opening probe (`measure`) may run on the render thread while this one tracks
        self._lock = threading.RLock()
        self._smoother = (
            OneEuroFilter(settings.smoothing_min_cutoff_hz, settings.smoothing_beta) if settings.smoothing else None
        )

    def open(self) -> None:
        verify_model_file(self.model_path)
        from mediapipe.tasks.python import BaseOptions, vision

        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(self.model_path)),
            running_mode=vision.RunningMode.VIDEO,
            num_faces=self.settings.max_faces,
            output_face_blendshapes=True,
            output_facial_transformation_matrixes=True,  # head pose, for puppet mode
        )
        try:
            with _quiet_native_stderr():
                self._landmarker = vision.FaceLandmarker.create_from_options(options)
                self._warm_up()
        except (RuntimeError, ValueError) as exc:
            raise ModelError(
                f"MediaPipe cannot load {self.model_path}: {exc}", "run `ventriloquist models fetch`"
            ) from None

    def _warm_up(self) -> None:
        """The first inference logs native warnings and is slow: do it now, on a blank frame."""
        import mediapipe as mp

        blank = np.zeros((64, 64, 3), np.uint8)
        self._landmarker.detect_for_video(mp.Image(image_format=mp.ImageFormat.SRGB, data=blank), 0)
        self._last_timestamp_ms = 0

    def close(self) -> None:
        if self._landmarker is not None:
            self._landmarker.close()
            self._landmarker = None

    def track(self, frame: VideoFrame) -> Face | None:
        if frame.still and self._last_face is not None and self._frames_since_seen == 0:
            return self._last_face
        face = self._detect(frame)
        if face is not None:
            if self._smoother is not None and not frame.still:
                face = Face(self._smoother(face.landmarks, frame.t), face.blendshapes, face.pose)
            self._last_face, self._frames_since_seen = face, 0
            return face
        if self._smoother is not None and self._frames_since_seen >= self.settings.hold_frames:
            self._smoother.reset()  # the next face may be someone else: do not glide to it
        self._frames_since_seen += 1
        if self._last_face is not None and self._frames_since_seen <= self.settings.hold_frames:
            return self._last_face
        return None

    def measure(self, image: np.ndarray) -> Face | None:
        """The face in `image` (a render of the frame just tracked), leaving the tracking as it was."""
        with self._lock:
            window, step = self._window_centre, self._search_step
            try:
                return self._detect(VideoFrame(image, 0.0, 0))
            finally:
                self._window_centre, self._search_step = window, step

    def _detect(self, frame: VideoFrame) -> Face | None:
        with self._lock:
            return self._detect_locked(frame)

    def _detect_locked(self, frame: VideoFrame) -> Face | None:
        import mediapipe as mp

        # VIDEO mode needs strictly increasing timestamps, also across a looping clip.
        timestamp_ms = max(round(frame.t * 1000), self._last_timestamp_ms + 1)
        self._last_timestamp_ms = timestamp_ms
        x0, y0, side = self._square_window(frame.image.shape)
        rgb = cv2.cvtColor(
            frame.image[y0 : y0 + side, x0 : x0 + side], cv2.COLOR_BGR2RGB
        )  # 10x faster than [..., ::-1]
        result = self._landmarker.detect_for_video(mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb), timestamp_ms)
        if not result.face_landmarks:
            self._window_centre = None
            self._search_step += 1
            return None
        faces = []
        for i, landmarks in enumerate(result.face_landmarks):
            points = np.array([[p.x * side + x0, p.y * side + y0, p.z * side] for p in landmarks], np.float32)
            shapes = {c.category_name: c.score for c in result.face_blendshapes[i]} if result.face_blendshapes else {}
            matrices = result.facial_transformation_matrixes
            pose = head_angles(np.asarray(matrices[i])) if matrices else (0.0, 0.0, 0.0)
            faces.append(Face(points, shapes, pose))
        if self.settings.pick == "centre":
            height, width = frame.image.shape[:2]
            centre = np.array([width / 2, height / 2])
            chosen = min(faces, key=lambda f: float(np.linalg.norm(f.landmarks[:, :2].mean(axis=0) - centre)))
        else:
            chosen = max(faces, key=_area)
        self._window_centre = chosen.landmarks[:, :2].mean(axis=0)
        return chosen

    def _square_window(self, shape: tuple[int, ...]) -> tuple[int, int, int]:
        """The square part of the frame MediaPipe looks at: (x0, y0, side).

        MediaPipe projects the landmarks of a non-square frame with a position-dependent error
        (8 px at 720p for a face near the top edge), and padding the frame to a square would shrink
        faces below its detector's reach; a square crop as tall as the frame has neither problem.
        It follows the tracked face; with none, it sweeps the frame (middle, one side, the other)."""
        height, width = shape[:2]
        side = min(height, width)
        free = max(height, width) - side
        if self._window_centre is not None:
            along = float(self._window_centre[0] if width > height else self._window_centre[1]) - side / 2
        else:
            along = free * (0.5, 0.0, 1.0)[self._search_step % 3]
        offset = int(np.clip(round(along), 0, free))
        return (offset, 0, side) if width > height else (0, offset, side)


def head_angles(matrix: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees from MediaPipe's 4 x 4 face transform, in the rig's convention
    (`render.rig`): +yaw faces the image's right, +pitch drops the chin, +roll turns clockwise."""
    r = matrix[:3, :3] / np.linalg.norm(matrix[:3, 0])
    yaw = -np.degrees(np.arcsin(np.clip(r[0, 2], -1, 1)))
    pitch = np.degrees(np.arctan2(-r[1, 2], r[2, 2]))
    roll = np.degrees(np.arctan2(r[0, 1], r[0, 0]))
    return float(yaw), float(pitch), float(roll)


def _area(face: Face) -> float:
    xy = face.landmarks[:, :2]
    width, height = xy.max(axis=0) - xy.min(axis=0)
    return float(width * height)
