"""Audio and video sources behind two small interfaces, chosen by URI scheme."""

from __future__ import annotations

from firmware_app.config import Settings
from firmware_app.sources.base import AudioSource, VideoSource
from firmware_app.uri import parse_uri

AUDIO_SCHEMES = ("mic", "file")
VIDEO_SCHEMES = ("v4l2", "csi", "file")


def open_audio_source(text: str, settings: Settings, realtime: bool) -> AudioSource:
    uri = parse_uri(text, AUDIO_SCHEMES)
    if uri.scheme == "mic":
        from firmware_app.sources.mic import MicSource

        return MicSource(uri.location, settings.audio.block_ms)
    from firmware_app.sources.audio_file import AudioFileSource

    return AudioFileSource(uri.path, settings.audio.block_ms, realtime)


def open_video_source(text: str, settings: Settings, realtime: bool, still_fps: float | None = None) -> VideoSource:
    """`still_fps`: the rate a still image plays at (puppet mode's portrait: `video.puppet_fps`),
    else the camera's rate it stands in for."""
    uri = parse_uri(text, VIDEO_SCHEMES)
    size = (settings.video.width, settings.video.height)
    if uri.scheme in ("v4l2", "csi"):
        from firmware_app.sources.camera import CameraSource

        return CameraSource(uri, size, settings.video.camera_fps, settings.sources.csi_source)
    if uri.is_image:
        from firmware_app.sources.image import ImageSource

        return ImageSource(uri.path, size, still_fps or settings.video.camera_fps, realtime)
    from firmware_app.sources.video_file import VideoFileSource

    return VideoFileSource(uri.path, size, realtime, settings.sources.loop_video)


__all__ = ["AudioSource", "VideoSource", "open_audio_source", "open_video_source"]
