"""The mouth network (PyTorch, training only): causal-with-bounded-look-ahead convolutions, a GRU,
and two heads — 15 viseme logits and the ARKit mouth blendshapes.

Two convolutions of width 5 without padding see a 9-frame window: CONTEXT past and LOOKAHEAD future
frames (the shipped model 4 + 4: 40 ms of future features, i.e. 50 ms of future audio with the 25 ms
analysis window; the 20 ms model 7 + 1). Which split a network has is only where its targets sit in
the window, so the same weights' shapes serve both, and `MouthNet(lookahead=…)` says which. The
sequence is padded with silent frames on both sides so every output frame sees a full window;
the streaming step (`MouthStep`) is the same arithmetic for one frame, written with plain
MatMul/Sigmoid/Tanh so the exported graph has no recurrent or loop operators.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from firmware_app.audio.features import N_MELS
from firmware_app.frames import HOP_S
from firmware_app.shapes import BLENDSHAPES, JAW_OPEN, MOUTH_CLOSE, VISEMES

N_FEATURES = 1 + N_MELS
KERNEL = 5
CONTEXT = LOOKAHEAD = 4  # frames, the default split; the window is CONTEXT + 1 + LOOKAHEAD = 9 frames
CONV_CHANNELS, GRU_HIDDEN = 128, 192  # the default sizes (`models.train --conv/--hidden` choose others)
WINDOW = CONTEXT + 1 + LOOKAHEAD
# Lips seal as P(PP) rises through this range. The blendshape head regresses towards the mean when
# unsure, leaving a gap on p/b/m of unfamiliar voices; the viseme head still ranks PP first, and an
# unclosed bilabial is the lip-sync error viewers notice most (MODEL_CARD.md, "Bilabial seal").
SEAL_FROM, SEAL_FULL = 0.03, 0.15
# ... a range that scales with the mouth the blendshape head already draws: by 1 + SEAL_SLOPE ×
# (aperture − SEAL_PIVOT), within SEAL_SCALE. A mouth the head nearly shuts seals on weaker
# evidence of p/b/m; a wide vowel needs surer evidence (a seal there costs the most). Chosen on validation.
SEAL_SLOPE, SEAL_PIVOT, SEAL_SCALE = 5.0, 0.3, (0.3, 3.0)
# real voices open the mouth wider than the model's regression towards the mean (chosen on validation)
APERTURE_GAIN = 1.2


class MouthNet(nn.Module):
    def __init__(
        self,
        mean: torch.Tensor,
        std: torch.Tensor,
        conv: int = CONV_CHANNELS,
        hidden: int = GRU_HIDDEN,
        dropout: float = 0.0,
        lookahead: int = LOOKAHEAD,
    ) -> None:
        super().__init__()
        if not 0 <= lookahead < WINDOW:
            raise ValueError(f"look-ahead {lookahead} frames does not fit a {WINDOW}-frame window")
        self.lookahead = lookahead  # future frames in the window; the rest before the target frame
        self.context = WINDOW - 1 - lookahead
        self.dropout = nn.Dropout(dropout)  # training only: identity in eval() and in the export
        self.register_buffer("mean", mean.reshape(1, 1, -1).float())
        self.register_buffer("std", std.reshape(1, 1, -1).float())
        self.conv1 = nn.Conv1d(N_FEATURES, conv, KERNEL)
        self.conv2 = nn.Conv1d(conv, conv, KERNEL)
        self.gru = nn.GRU(conv, hidden, batch_first=True)
        self.head = nn.Linear(hidden, len(VISEMES) + len(BLENDSHAPES))
        self.hidden = hidden
        # log class weights taken out of the viseme head's bias after training (`fold_prior`)
        self.register_buffer("viseme_prior", torch.zeros(len(VISEMES)))

    def fold_prior(self, class_weights: torch.Tensor) -> None:
        """Training weights each viseme's loss by its class weight, which multiplies the learnt
        posterior by that weight: rare visemes are over-predicted. Dividing it back out (a bias
        shift, no new operator) gives the plain posterior, whose argmax is right most often."""
        log_weights = torch.log(class_weights.float())
        with torch.no_grad():
            self.head.bias[: len(VISEMES)] -= log_weights
        self.viseme_prior += log_weights

    def unfold_prior(self, class_weights: torch.Tensor | None = None) -> None:
        """Back to the training-time posterior (to fine-tune folded weights): the one under
        `class_weights` when given (a fine-tune may weigh the visemes anew), else under the
        weights that were folded out."""
        folded = bool(self.viseme_prior.any())
        with torch.no_grad():
            if class_weights is None:
                self.head.bias[: len(VISEMES)] += self.viseme_prior
            elif folded:
                self.head.bias[: len(VISEMES)] += torch.log(class_weights.float())
        self.viseme_prior.zero_()

    def load_weights(self, state: dict) -> None:
        """A saved state dict; weights saved before `viseme_prior` existed had nothing folded."""
        self.load_state_dict({"viseme_prior": torch.zeros(len(VISEMES)), **state})

    @staticmethod
    def sizes_of(state: dict) -> dict[str, int]:
        """The constructor's sizes of saved weights, read from their tensors' shapes (for bare state
        dicts such as models/mouth.pt; a checkpoint says them itself, `read_checkpoint`)."""
        return {
            "conv": state["conv1.weight"].shape[0],
            "hidden": state["gru.weight_hh_l0"].shape[1],
            "lookahead": LOOKAHEAD,  # tensors cannot say it; weights saved before it was recorded had 4
        }

    @property
    def lookahead_s(self) -> float:
        """Future audio a shape needs, as the runtime counts it (`LearnedMouthModel.lookahead_s`)."""
        return (self.lookahead + 1) * HOP_S

    @property
    def sizes(self) -> dict[str, int]:
        """The constructor's sizes of this network, as `save_checkpoint` records them."""
        return {"conv": self.conv1.out_channels, "hidden": self.hidden, "lookahead": self.lookahead}

    def encode(self, features: torch.Tensor) -> torch.Tensor:
        """features: B x (T + 8) x F, already padded → B x T x conv."""
        x = ((features - self.mean) / self.std).transpose(1, 2)
        x = torch.relu(self.conv1(x))
        x = self.dropout(torch.relu(self.conv2(x)))
        return x.transpose(1, 2)

    def forward(self, features: torch.Tensor, h0: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded features → (viseme logits B x T x 15, blendshape logits B x T x 16)."""
        out, _ = self.gru(self.encode(features), h0)
        y = self.head(out)
        return y[..., : len(VISEMES)], y[..., len(VISEMES) :]


class MouthStep(nn.Module):
    """One 10 ms step for export: a 9-frame feature window and the GRU state in, the shape out."""

    def __init__(self, net: MouthNet) -> None:
        super().__init__()
        self.net = net
        hidden = net.hidden
        w_ih, w_hh = net.gru.weight_ih_l0.detach(), net.gru.weight_hh_l0.detach()
        b_ih, b_hh = net.gru.bias_ih_l0.detach(), net.gru.bias_hh_l0.detach()
        # PyTorch orders the gates r, z, n
        self.register_buffer("w_ih", w_ih.t().contiguous())
        self.register_buffer("w_hh", w_hh.t().contiguous())
        self.register_buffer("b_ih", b_ih)
        self.register_buffer("b_hh", b_hh)
        self.hidden = hidden

    def forward(self, window: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """window: 1 x 9 x F, state: 1 x H → (viseme probabilities 1 x 15, blendshapes 1 x 16, state 1 x H)."""
        new_state = self.cell(self.net.encode(window)[:, 0, :], state)
        return *self.outputs(new_state), new_state

    def cell(self, x: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """One GRU step: the next state."""
        gi = x @ self.w_ih + self.b_ih
        gh = state @ self.w_hh + self.b_hh
        h = self.hidden
        r = torch.sigmoid(gi[:, :h] + gh[:, :h])
        z = torch.sigmoid(gi[:, h : 2 * h] + gh[:, h : 2 * h])
        n = torch.tanh(gi[:, 2 * h :] + r * gh[:, 2 * h :])
        return (1 - z) * n + z * state

    def outputs(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """GRU states (… x H) → viseme probabilities and blendshapes."""
        y = self.net.head(hidden)
        return shapes_from_logits(y[..., : len(VISEMES)], y[..., len(VISEMES) :])


class MouthChunk(MouthStep):
    """CHUNK steps at once for offline analysis: the same cell unrolled, so no loop operator and the
    same numbers as CHUNK calls of MouthStep. Window: 1 x (CHUNK + 8) x F.

    Arranged for few operators per frame (an unrolled graph's time goes to dispatching them): the
    input's share of every gate does not depend on the state, so it is one product over all frames
    (with the r and z gates' recurrent biases folded in), and the heads run once over all states."""

    def __init__(self, net: MouthNet, frames: int) -> None:
        super().__init__(net)
        self.frames = frames
        h = self.hidden
        zeros = torch.zeros(h)
        self.register_buffer("b_folded", self.b_ih + torch.cat([self.b_hh[: 2 * h], zeros]))
        self.register_buffer("b_hn", torch.cat([zeros, zeros, self.b_hh[2 * h :]]))

    def forward(self, window: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.hidden
        gi = self.net.encode(window)[0] @ self.w_ih + self.b_folded  # frames x 3H
        gi_rz, gi_n = torch.split(gi[:, : 2 * h], 1), torch.split(gi[:, 2 * h :], 1)
        states = []
        for i in range(self.frames):
            gh_rz, gh_n = torch.split(state @ self.w_hh + self.b_hn, [2 * h, h], dim=1)
            r, z = torch.split(torch.sigmoid(gi_rz[i] + gh_rz), h, dim=1)
            n = torch.tanh(gi_n[i] + r * gh_n)
            state = n + z * (state - n)
            states.append(state)
        return *self.outputs(torch.cat(states)[None]), state


def shapes_from_logits(
    viseme_logits: torch.Tensor,
    shape_logits: torch.Tensor,
    gain: float | None = None,
    seal: tuple[float, float] | None = None,
    slope: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Head outputs (… x 15, … x 16) → viseme probabilities and blendshapes, with the output stage:
    the aperture scaled by APERTURE_GAIN (jawOpen and mouthClose together, jawOpen at most 1),
    then the bilabial seal: mouthClose rises to jawOpen (aperture 0) as P(PP) goes from SEAL_FROM
    to SEAL_FULL, both scaled by `seal_scale` of the aperture. Written with Mul/Add/Div/Clip/Min/Max
    only, so the exported graph stays TensorRT-friendly. `gain`, `seal` and `slope` override the
    constants (models.tune tries others)."""
    gain = APERTURE_GAIN if gain is None else gain
    seal_from, seal_full = (SEAL_FROM, SEAL_FULL) if seal is None else seal
    visemes = torch.softmax(viseme_logits, dim=-1)
    blendshapes = torch.sigmoid(shape_logits)
    only_jaw = torch.tensor([float(i == JAW_OPEN) for i in range(len(BLENDSHAPES))])
    only_close = torch.tensor([float(i == MOUTH_CLOSE) for i in range(len(BLENDSHAPES))])
    jaw, close = blendshapes[..., JAW_OPEN], blendshapes[..., MOUTH_CLOSE]
    if gain != 1.0:
        gained_jaw = torch.clamp(jaw * gain, 0.0, 1.0)
        gained_close = torch.minimum(close * gain, gained_jaw)
        blendshapes = (
            blendshapes
            + (gained_jaw - jaw).unsqueeze(-1) * only_jaw
            + (gained_close - close).unsqueeze(-1) * only_close
        )
        jaw, close = gained_jaw, gained_close
    scale = seal_scale(torch.clamp(jaw - close, 0.0, 1.0), SEAL_SLOPE if slope is None else slope)
    seal = torch.clamp(
        (visemes[..., VISEMES.index("PP")] - seal_from * scale) / ((seal_full - seal_from) * scale), 0.0, 1.0
    )
    raise_close = torch.maximum(close, jaw * seal) - close
    return visemes, blendshapes + raise_close.unsqueeze(-1) * only_close


def seal_scale(aperture: torch.Tensor, slope: float) -> torch.Tensor:
    """How much surer of p/b/m the seal must be for this aperture (1 at SEAL_PIVOT)."""
    return torch.clamp(1.0 + slope * (aperture - SEAL_PIVOT), *SEAL_SCALE)


def parameter_count(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def save_checkpoint(net: MouthNet, path: Path) -> None:
    """Save the weights with the sizes they were built with: `{"sizes": …, "state_dict": …}`. The
    sizes are stated rather than left to be read back from tensor shapes, so a loader need not know
    which layer's shape carries which size (nor can a new layer's size go unrecorded)."""
    torch.save({"sizes": net.sizes, "state_dict": net.state_dict()}, path)


def read_checkpoint(path: Path) -> tuple[dict[str, int], dict]:
    """(sizes, state dict) of saved weights: a checkpoint's own record of its sizes, or, for a bare
    state dict (models/mouth.pt and every `.pt` saved before checkpoints said their sizes), the
    sizes its tensors' shapes imply."""
    saved = torch.load(path, map_location="cpu")
    if "state_dict" in saved:  # a state dict's keys are parameter names, never this
        return {"lookahead": LOOKAHEAD, **saved["sizes"]}, saved["state_dict"]
    return MouthNet.sizes_of(saved), saved
