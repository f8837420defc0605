"""`file://NAME.face`: a face pack's reference still (the enrolled person at rest) as the portrait."""

from __future__ import annotations

from firmware_app.face.pack import FacePack
from firmware_app.sources.base import fit_frame
from firmware_app.sources.image import ImageSource


class FacePackSource(ImageSource):
    def __init__(self, pack: FacePack, size: tuple[int, int], fps: float, realtime: bool) -> None:
        super().__init__(pack.path, size, fps, realtime)
        self.pack = pack

    def open(self) -> None:
        self._image = fit_frame(self.pack.reference, self.size)
        self._image.flags.writeable = False  # shared by every frame: stages must copy before drawing
