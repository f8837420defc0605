"""The renderer stage: frame + tracked face + mouth shape → the frame the audience sees."""

from __future__ import annotations

import numpy as np

from firmware_app.config import DisclosureSettings, RendererSettings
from firmware_app.frames import Face, MouthShape, VideoFrame
from firmware_app.render.disclosure import draw_disclosure
from firmware_app.render.mouth import render_mouth


class Renderer:
    def __init__(self, settings: RendererSettings, disclosure: DisclosureSettings) -> None:
        self.settings = settings
        self.disclosure = disclosure

    def render(self, frame: VideoFrame, face: Face | None, shape: MouthShape) -> np.ndarray:
        if face is None:
            out = frame.image.copy()  # nobody in view: show the picture untouched
        else:
            opening = shape.aperture * self.settings.mouth_gain * self.settings.max_open
            out = render_mouth(frame.image, face, opening, self.settings.interior_color)
        if self.disclosure.enabled:
            draw_disclosure(out, self.disclosure)
        return out
