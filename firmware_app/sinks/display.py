"""`display://0`: a fullscreen OpenCV window on the HDMI screen (X11 display :0)."""

from __future__ import annotations

import os

import cv2

from firmware_app.errors import DeviceError
from firmware_app.frames import VideoFrame
from firmware_app.sinks.base import Sink

QUIT_KEYS = {27, ord("q")}  # Esc or q closes the window when a keyboard is attached


def display_available() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


class DisplaySink(Sink):
    def __init__(self, screen: str, title: str) -> None:
        self.screen = screen
        self.title = title
        self._closed_by_user = False
        self._open = False

    def open(self, width: int, height: int, fps: float) -> None:
        if not os.environ.get("DISPLAY"):
            # OpenCV's Qt backend aborts the whole process without a display, so check first.
            os.environ["DISPLAY"] = f":{self.screen}" if self.screen.isdigit() else self.screen
            if not os.path.exists(f"/tmp/.X11-unix/X{self.screen}"):
                del os.environ["DISPLAY"]
                raise DeviceError(
                    f"no X display :{self.screen} to show the video on",
                    "start the kiosk display session, set DISPLAY, or set output.uri to file://out.mp4 or null://",
                )
        cv2.namedWindow(self.title, cv2.WINDOW_NORMAL)
        cv2.resizeWindow(self.title, width, height)
        cv2.setWindowProperty(self.title, cv2.WND_PROP_FULLSCREEN, cv2.WINDOW_FULLSCREEN)
        self._open = True

    def write_video(self, frame: VideoFrame) -> None:
        cv2.imshow(self.title, frame.image)
        key = cv2.waitKey(1) & 0xFF
        try:
            visible = cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) >= 1
        except cv2.error:  # the window manager destroyed the window
            visible = False
        if key in QUIT_KEYS or not visible:
            self._closed_by_user = True

    @property
    def closed_by_user(self) -> bool:
        return self._closed_by_user

    def close(self, complete: bool = True) -> None:
        if self._open:
            try:
                cv2.destroyWindow(self.title)
                cv2.waitKey(1)
            except cv2.error:  # the window manager already destroyed it
                pass
            self._open = False
            self._closed_by_user = False
