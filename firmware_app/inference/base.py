"""The backend interface: named float32 inputs in, the model's outputs out, in graph order."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np


class Backend(ABC):
    name: str = "backend"
    input_shapes: dict[str, tuple[int, ...]]
    output_names: list[str]

    @abstractmethod
    def run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        """One inference; inputs must have exactly `input_shapes`."""

    def close(self) -> None:
        """Free device memory; safe to call twice."""
