"""The visible "synthetic video" mark (EU AI Act art. 50), scaled to the frame."""

from __future__ import annotations

import cv2
import numpy as np

from firmware_app.config import DisclosureSettings

FONT = cv2.FONT_HERSHEY_DUPLEX
_SHADE = (np.arange(256) * 0.35).astype(np.uint8)  # the box behind the mark: each level × 0.35, as a table
_SHADE_PROMPT = (np.arange(256) * 0.4).astype(np.uint8)  # the attract prompt's box: × 0.4


def draw_disclosure(image: np.ndarray, settings: DisclosureSettings) -> None:
    """Draw the mark in place: white text on a translucent dark box in the configured corner."""
    height, width = image.shape[:2]
    scale = max(0.4, height / 720 * 0.8)
    thickness = max(1, round(scale * 1.5))
    (text_w, text_h), baseline = cv2.getTextSize(settings.text, FONT, scale, thickness)
    pad = round(10 * scale)
    box_w, box_h = text_w + 2 * pad, text_h + baseline + 2 * pad
    margin = round(16 * scale)
    x = margin if settings.position.endswith("left") else width - box_w - margin
    y = margin if settings.position.startswith("top") else height - box_h - margin
    x, y = max(0, x), max(0, y)
    region = image[y : y + box_h, x : x + box_w]
    region[:] = cv2.LUT(region, _SHADE)
    cv2.putText(image, settings.text, (x + pad, y + pad + text_h), FONT, scale, (255, 255, 255), thickness, cv2.LINE_AA)


def draw_prompt(image: np.ndarray, text: str) -> None:
    """The attract prompt, centred low on the picture, in place (shown when nobody is there)."""
    height, width = image.shape[:2]
    scale = max(0.6, height / 720 * 1.2)
    thickness = max(1, round(scale * 2))
    (text_w, text_h), baseline = cv2.getTextSize(text, FONT, scale, thickness)
    x, y = max(0, (width - text_w) // 2), int(height * 0.85)
    pad = round(14 * scale)
    region = image[max(0, y - text_h - pad) : y + baseline + pad, max(0, x - pad) : x + text_w + pad]
    region[:] = cv2.LUT(region, _SHADE_PROMPT)
    cv2.putText(image, text, (x, y), FONT, scale, (255, 255, 255), thickness, cv2.LINE_AA)
