"""A person's own mouth: the renderer painting the opening from a face pack.

A face pack (`NAME.face`, written by `ventriloquist enroll`; its format, and the mouth frame its
exemplars are stored in, in `firmware_app.face.pack`) holds a bank of one person's mouth
exemplars, pre-merged at enrollment. The runtime only looks up, warps and colour-matches them
(`render.exemplars.BankMouth`, the path every bank of real mouths shares); the compositor
(`render.mouth`) also seals closures and rest on the picture's own lips: a pack's reference still
is the person's own closed mouth.
"""

from __future__ import annotations

import numpy as np

from firmware_app.config import DisclosureSettings, RendererSettings
from firmware_app.face.pack import FacePack, require_disclosure
from firmware_app.render import Renderer
from firmware_app.render.exemplars import BankMouth

OWN_MAX_OPEN = (0.06, 0.3)  # the person's own opening at jawOpen 1 (face heights) is kept within these

__all__ = ["BankMouth", "BankRenderer"]


class BankRenderer(Renderer):
    """The renderer with its mouth taken from a face pack: each frame's command reaches the bank."""

    def __init__(self, settings: RendererSettings, disclosure: DisclosureSettings, pack: FacePack) -> None:
        require_disclosure(pack, disclosure)
        per_jaw_open = pack.manifest.get("aperture_range", {}).get("per_jaw_open")
        if per_jaw_open:  # the person's mouth opens as far as theirs did in the clip for the same jawOpen
            settings = settings.model_copy(update={"max_open": float(np.clip(per_jaw_open, *OWN_MAX_OPEN))})
        super().__init__(settings, disclosure)
        self.bank = BankMouth(pack.bank, pack)
        self.source = self.bank
