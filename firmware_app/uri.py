"""URI-style names for sources and sinks, after jetson-utils: `mic://default`, `v4l2:///dev/video0`,
`csi://0`, `file://clip.mp4`, `display://0`, `null://`. A bare path means `file://`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from firmware_app.assets import resolve_path
from firmware_app.errors import ConfigError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


@dataclass(frozen=True)
class Uri:
    scheme: str
    location: str
    text: str

    @property
    def path(self) -> Path:
        """The file this URI names (bundled:// resolves into the package's assets)."""
        if self.scheme == "bundled":
            return resolve_path(self.text)
        return resolve_path(self.location)

    @property
    def is_image(self) -> bool:
        return self.path.suffix.lower() in IMAGE_SUFFIXES


def parse_uri(text: str, allowed: tuple[str, ...]) -> Uri:
    """Split `scheme://location`; refuse schemes this slot does not take."""
    scheme, sep, location = text.partition("://")
    if not sep:
        scheme, location = "file", text
    scheme = scheme.lower()
    if scheme == "bundled" and "file" in allowed:
        return Uri("bundled", location, text)
    if scheme not in allowed:
        raise ConfigError(
            f"'{text}' uses the scheme '{scheme}://', which this input or output does not take",
            "use one of: " + ", ".join(f"{s}://" for s in allowed),
        )
    return Uri(scheme, location, text)
