"""The life cycle every device- or file-backed stage shares."""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T", bound="Resource")


class Resource:
    """Opened before use and closed after; `with stage:` does both, and close is safe to repeat."""

    def open(self) -> None:
        """Acquire the device, file or model."""

    def close(self) -> None:
        """Release it."""

    def __enter__(self: T) -> T:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
