"""Train the mouth network on a corpus built by `models.corpus`, then export it to ONNX.

    python -m models.train --corpus build/corpus --out firmware_app/assets/models/mouth.onnx --minutes 30

CPU only, fixed seed, a progress bar, and a report (`<out>.train.json`: the settings, the losses
over time) next to the model. `TrainConfig` holds one run's settings; `train(config)` runs it.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from firmware_app.audio.features import features_of, pad_silence
from firmware_app.shapes import BLENDSHAPES, VISEMES
from models.corpus import load_split
from models.export import export_onnx, write_golden
from models.metrics import TOLERANCE_FRAMES
from models.net import (
    CONV_CHANNELS,
    GRU_HIDDEN,
    LOOKAHEAD,
    WINDOW,
    MouthNet,
    parameter_count,
    read_checkpoint,
    save_checkpoint,
)
from models.targets import CLOSE, JAW, VISEME_INDEX, make_targets

BILABIAL_WEIGHT = 4.0
MASK_BANDS = 6  # feature augmentation: up to this many adjacent mel bands masked ...
TILT = 0.3  # ... and a spectral tilt of up to ±TILT (log10 power, ±3 dB) across the bands


@dataclass(frozen=True)
class TrainConfig:
    """One training run's settings, as `python -m models.train` reads them from its command line:
    each field is the flag of its name (`real_fraction` is `--real-fraction`) unless its comment
    names another. The report beside the model keeps them all (`config` in `<out>.train.json`)."""

    corpus: Path  # the synthetic corpus (models.corpus, exact timing); required, no default
    out: Path = Path(
        "firmware_app/assets/models/mouth.onnx"
    )  # the exported step; .pt, .chunk.onnx, golden and report beside it
    minutes: float = 30.0  # wall-clock budget for the optimisation (30); the learning rate decays over it or max_steps
    max_steps: int = 6000  # --steps: at most this many optimiser steps (6000)
    seed: int = 7  # seeds PyTorch and the crop sampler (7)
    batch: int = 32  # crops per step, shared between the corpora by real_fraction (32)
    crop_frames: int = 300  # --frames: 10 ms frames per training crop (300)
    real: Path | None = None  # the real-speech corpus (models.real_corpus) to train on too; None: synthetic only
    real_fraction: float = 0.5  # with `real`: share of each batch from real speech (0.5)
    # fine-tune these saved weights (a .pt: their sizes, their normalisation); None: from scratch
    init: Path | None = None
    lr: float = 2e-3  # AdamW's peak learning rate, cosine-decayed to 0 (2e-3)
    threads: int = 0  # PyTorch threads (0: its default)
    check_every: int = 200  # steps between checks on the validation split, and checkpoints (200)
    feature_augment: bool = False  # random spectral tilt and a masked band on every crop (off)
    dropout: float = 0.0  # dropout before the GRU, training only (0: none)
    # --conv: channels of both convolutions (CONV_CHANNELS; an `init` brings its own)
    conv_channels: int = CONV_CHANNELS
    gru_hidden: int = GRU_HIDDEN  # --hidden: GRU state size (GRU_HIDDEN; an `init` brings its own)
    ema: float = 0.0  # check and keep a moving average of the weights with this decay per step (0: off)
    closure_weight: float = 1.0  # multiplies PP's viseme loss weight (1: unchanged)
    window_weight: float = 0.0  # --window-loss: weight of `window_loss` beside the cross-entropy (0: off)
    checkpoints: bool = False  # save every checked state under <out dir>/checkpoints/ for models.tune (off)
    # future feature frames the network sees (LOOKAHEAD = 4: 50 ms of audio; 1: 20 ms), an `init`'s too
    lookahead: int = LOOKAHEAD


def augment_features(x: torch.Tensor, rng: np.random.Generator, mean: torch.Tensor) -> torch.Tensor:
    """Channel variation no recording in the corpus has, on the features of every crop: a random
    spectral tilt (another microphone or room colour) and a few adjacent bands set to their
    training mean (SpecAugment's frequency mask: no single band may be needed). Time is never
    masked: timing is what the model must learn."""
    x = x.clone()
    crops, _, width = x.shape
    bands = width - 1  # column 0 is the level
    ramp = torch.linspace(-1.0, 1.0, bands)
    tilts = torch.from_numpy(rng.uniform(-TILT, TILT, crops).astype(np.float32))
    x[:, :, 1:] += tilts[:, None, None] * ramp[None, None, :]
    for crop in range(crops):
        size = int(rng.integers(0, MASK_BANDS + 1))
        if size:
            first = 1 + int(rng.integers(0, bands - size + 1))
            x[crop, :, first : first + size] = mean[first : first + size]
    return x


class Stream:
    """All training utterances end to end, so random crops cross utterance boundaries like live audio does."""

    def __init__(self, utterances: list[dict], lookahead: int = LOOKAHEAD) -> None:
        gap = 10
        self.margin = WINDOW - 1  # frames a crop needs beyond its targets
        feats, visemes, shapes = [], [], []
        for u in utterances:
            feats.append(pad_silence(u["features"].astype(np.float32), 0, gap))
            visemes.append(np.concatenate([u["visemes"], np.zeros(gap, np.int64)]))
            shapes.append(
                np.concatenate([u["blendshapes"].astype(np.float32), np.zeros((gap, len(BLENDSHAPES)), np.float32)])
            )
        # the network's output t sees frames t - context … t + lookahead: padding the stream that way
        # is what puts each target where the look-ahead says
        self.features = pad_silence(np.concatenate(feats), self.margin - lookahead, lookahead)
        self.visemes = np.concatenate(visemes)
        self.blendshapes = np.concatenate(shapes)

    def __len__(self) -> int:
        return len(self.visemes)

    def batch(self, rng: np.random.Generator, size: int, frames: int) -> tuple[torch.Tensor, ...]:
        starts = rng.integers(0, len(self) - frames, size)
        x = np.stack([self.features[s : s + frames + self.margin] for s in starts])
        v = np.stack([self.visemes[s : s + frames] for s in starts])
        b = np.stack([self.blendshapes[s : s + frames] for s in starts])
        return torch.from_numpy(x), torch.from_numpy(v), torch.from_numpy(b)


def viseme_class_weights(streams: list[Stream], closure_weight: float = 1.0) -> torch.Tensor:
    """Each viseme's loss weight: the square root of its inverse frequency over the training streams,
    PP's times `closure_weight` (more of the gradient for the shape viewers check first; the weights
    are folded out after training, so this does not bias the exported posterior)."""
    counts = sum(np.bincount(s.visemes, minlength=len(VISEMES)).astype(np.float64) for s in streams)
    weights = (counts.sum() / np.maximum(counts, 1) / len(VISEMES)) ** 0.5
    weights[VISEME_INDEX["PP"]] *= closure_weight
    return torch.tensor(weights, dtype=torch.float32)


def window_loss(viseme_logits: torch.Tensor, v: torch.Tensor, frames: int = TOLERANCE_FRAMES) -> torch.Tensor:
    """−log of the probability the network gives to *any* viseme the reference has within ±`frames`
    of each frame: what `models.metrics` counts as a hit. An aligned boundary is good to 10–20 ms,
    so the cross-entropy alone makes the network bet on the aligner's side of every boundary.
    PP is not forgiven on its neighbours' frames: its probability drives the bilabial seal
    (`models.net.shapes_from_logits`), and a PP smeared over them sealed the lips around every
    p/b/m. (Also keeping a PP frame from forgiving its neighbours measured worse in `models.tune`.)"""
    padded = nn.functional.pad(v[:, None].float(), (frames, frames), mode="replicate")[:, 0].long()
    nearby = padded.unfold(1, 2 * frames + 1, 1)  # (batch, time, window)
    allowed = nn.functional.one_hot(nearby, len(VISEMES)).amax(dim=2).bool()
    allowed[..., VISEME_INDEX["PP"]] = v == VISEME_INDEX["PP"]
    log_probs = viseme_logits.log_softmax(-1)
    return -torch.logsumexp(log_probs.masked_fill(~allowed, -torch.inf), dim=-1).mean()


def losses(
    net: MouthNet,
    x: torch.Tensor,
    v: torch.Tensor,
    b: torch.Tensor,
    class_weights: torch.Tensor,
    window_weight: float = 0.0,
) -> dict[str, torch.Tensor]:
    viseme_logits, shape_logits = net(x)
    shapes = torch.sigmoid(shape_logits)
    ce = nn.functional.cross_entropy(
        viseme_logits.reshape(-1, len(VISEMES)), v.reshape(-1), weight=class_weights, label_smoothing=0.05
    )
    shape_l1 = (shapes - b).abs().mean()
    aperture = torch.relu(shapes[..., JAW] - shapes[..., CLOSE])
    target_aperture = torch.relu(b[..., JAW] - b[..., CLOSE])
    # a mouth that fails to close on p/b/m is the error people notice most: weigh those frames more
    weight = 1.0 + BILABIAL_WEIGHT * (v == VISEME_INDEX["PP"]).float()
    aperture_l1 = ((aperture - target_aperture).abs() * weight).mean() / weight.mean()
    total = ce + 4.0 * shape_l1 + 6.0 * aperture_l1
    result = {"viseme_ce": ce, "shape_l1": shape_l1, "aperture_l1": aperture_l1}
    if window_weight > 0:
        result["viseme_window"] = window_loss(viseme_logits, v)
        total = total + window_weight * result["viseme_window"]
    return {"total": total, **result}


def evaluate(
    net: MouthNet, stream: Stream, class_weights: torch.Tensor, window_weight: float = 0.0
) -> dict[str, float]:
    rng = np.random.default_rng(1)
    net.eval()
    with torch.no_grad():
        x, v, b = stream.batch(rng, 32, 400)
        result = {k: float(val) for k, val in losses(net, x, v, b, class_weights, window_weight).items()}
        viseme_logits, _ = net(x)
        result["frame_accuracy"] = float((viseme_logits.argmax(-1) == v).float().mean())
    net.train()
    return result


def save_folded(net: MouthNet, class_weights: torch.Tensor, path: Path) -> None:
    """Save a copy of `net` as the final weights are saved: the class prior folded out, the sizes stated."""
    copy_ = copy.deepcopy(net)
    copy_.fold_prior(class_weights)
    save_checkpoint(copy_, path)


def with_targets(records: list[dict]) -> list[dict]:
    """Evaluation records (audio + phonemes) as training records (features + targets)."""
    out = []
    for r in records:
        features = features_of(r["audio"])
        targets = make_targets(r["phonemes"], len(features))
        out.append({"features": features, "visemes": targets.visemes, "blendshapes": targets.blendshapes})
    return out


def train(config: TrainConfig) -> dict:
    """Synthetic `config.corpus` (exact timing), plus the real-speech corpus `config.real`
    (aligned, augmented) when given: each batch takes `real_fraction` of its crops from real
    speech, and the weights kept are those that scored best on the real validation speakers (never
    the test speakers). `init` fine-tunes saved weights (their input normalisation is kept).
    `feature_augment` and `dropout` (before the GRU) act in training only: the exported graph is
    the same. `conv_channels` and `gru_hidden` size the network (an `init` brings its own sizes).
    `ema` > 0 checks and keeps an exponential moving average of the weights (this decay per step)
    instead of the raw weights. `checkpoints` saves every checked state (prior folded, like the
    final `.pt`) under `<out dir>/checkpoints/`, for `models.tune` to choose among on the
    validation metrics. `window_weight` adds that much of `window_loss` to the cross-entropy."""
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    torch.set_num_threads(config.threads or max(1, torch.get_num_threads()))
    started = time.time()
    streams = [Stream(load_split(config.corpus, "train"), config.lookahead)]
    shares = [1.0]
    if config.real is not None:
        streams.append(Stream(load_split(config.real, "train"), config.lookahead))
        shares = [1.0 - config.real_fraction, config.real_fraction]
        check_stream = Stream(with_targets(load_split(config.real, "validation")), config.lookahead)
    else:
        check_stream = Stream(load_split(config.corpus, "heldout_sentence"), config.lookahead)
    all_features = np.concatenate([s.features for s in streams])
    mean = torch.from_numpy(all_features.mean(axis=0))
    std = torch.from_numpy(all_features.std(axis=0) + 1e-3)
    del all_features
    class_weights = viseme_class_weights(streams, config.closure_weight)
    if config.init is not None:
        sizes, saved = read_checkpoint(config.init)
        sizes["lookahead"] = config.lookahead  # a 50 ms network's weights start a 20 ms one well
    else:
        sizes, saved = {"conv": config.conv_channels, "hidden": config.gru_hidden, "lookahead": config.lookahead}, None
    net = MouthNet(mean, std, dropout=config.dropout, **sizes)
    if saved is not None:
        net.load_weights(saved)
        net.unfold_prior(class_weights)  # fine-tune on the posterior this run's loss trains
        mean = net.mean.reshape(-1).clone()  # masked bands go to the normalisation the weights were trained with
    optimizer = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=1e-4)
    averaged = AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(config.ema)) if config.ema > 0 else None
    checked = averaged.module if averaged is not None else net  # the weights that are checked and kept
    checkpoint_dir = config.out.parent / "checkpoints"
    if config.checkpoints:
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
    max_steps, budget_s = config.max_steps, config.minutes * 60
    deadline = started + budget_s
    history = []
    best = (math.inf, 0, copy.deepcopy(checked.state_dict()))
    per_stream = [max(1, round(config.batch * share)) for share in shares]
    progress = tqdm(total=max_steps, desc="training", unit="step")
    step = 0
    while step < max_steps and time.time() < deadline:
        fraction = max(step / max_steps, (time.time() - started) / budget_s)
        for group in optimizer.param_groups:
            group["lr"] = config.lr * 0.5 * (1 + math.cos(math.pi * min(fraction, 1.0)))
        parts = [stream.batch(rng, n, config.crop_frames) for stream, n in zip(streams, per_stream)]
        x, v, b = (torch.cat(tensors) for tensors in zip(*parts))
        if config.feature_augment:
            x = augment_features(x, rng, mean)
        result = losses(net, x, v, b, class_weights, config.window_weight)
        optimizer.zero_grad()
        result["total"].backward()
        nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        optimizer.step()
        if averaged is not None:
            averaged.update_parameters(net)
        step += 1
        progress.update(1)
        if step % config.check_every == 0 or step == max_steps:
            check = evaluate(checked, check_stream, class_weights, config.window_weight)
            history.append(
                {"step": step, "train_total": float(result["total"]), **{f"check_{k}": v for k, v in check.items()}}
            )
            progress.set_postfix(loss=f"{float(result['total']):.3f}", acc=f"{check['frame_accuracy']:.3f}")
            if check["total"] < best[0]:
                best = (check["total"], step, copy.deepcopy(checked.state_dict()))
            if config.checkpoints:
                save_folded(checked, class_weights, checkpoint_dir / f"step{step:05d}.pt")
    progress.close()
    train_seconds = time.time() - started
    if config.real is not None:
        net.load_state_dict(best[2])  # chosen on the validation speakers
    elif averaged is not None:
        net.load_state_dict(checked.state_dict())
    net.fold_prior(class_weights)
    net.eval()
    export_onnx(net, config.out, config.corpus)
    save_checkpoint(net, config.out.with_suffix(".pt"))
    write_golden(config.out)
    report = {
        "steps": step,
        "train_minutes": round(train_seconds / 60, 2),
        "parameters": parameter_count(net),
        "train_frames": sum(len(s) for s in streams),
        "train_hours": {name: round(len(s) * 0.01 / 3600, 2) for name, s in zip(("synthetic", "real"), streams)},
        "real_fraction": config.real_fraction if config.real is not None else 0.0,
        "check_split": "real validation speakers" if config.real is not None else "synthetic heldout_sentence",
        "chosen_step": best[1] if config.real is not None else step,
        **settings_record(config, net, class_weights),
        "lookahead_frames": net.lookahead,
        "final": history[-1] if history else {},
        "history": history,
        "config": config_record(config),
    }
    config.out.with_suffix(".train.json").write_text(json.dumps(report, indent=2))
    return report


def settings_record(config: TrainConfig, net: MouthNet, class_weights: torch.Tensor) -> dict:
    """The run's settings under the keys, and in the order, the report has always had (its readers
    and the reports of earlier runs know them; `config_record` has every field by its own name).
    The sizes are the trained network's, which an `init` decides, and the class weights those the
    corpora gave."""
    settings = config_record(config)
    return {
        **{key: settings[key] for key in ("seed", "feature_augment", "dropout")},
        "conv_channels": net.sizes["conv"],
        "gru_hidden": net.sizes["hidden"],
        **{key: settings[key] for key in ("init", "ema", "closure_weight", "window_weight", "lr")},
        "viseme_class_weights": dict(
            zip(VISEMES, [round(float(w), 4) for w in class_weights])
        ),  # folded out after training
        "batch": settings["batch"],
        "crop_frames": settings["crop_frames"],
    }


def config_record(config: TrainConfig) -> dict:
    """`config` as JSON values (paths as text, None kept)."""
    return {key: str(value) if isinstance(value, Path) else value for key, value in asdict(config).items()}


def command_line() -> argparse.ArgumentParser:
    """The flags of `python -m models.train`, one per TrainConfig field (defaults: the field's)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--minutes", type=float, help="wall-clock budget for the optimisation")
    parser.add_argument("--steps", dest="max_steps", metavar="STEPS", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--batch", type=int)
    parser.add_argument("--frames", dest="crop_frames", metavar="FRAMES", type=int)
    parser.add_argument("--real", type=Path, help="the real-speech corpus (models.real_corpus) to train on too")
    parser.add_argument("--real-fraction", type=float, help="share of each batch from real speech")
    parser.add_argument("--init", type=Path, help="fine-tune these saved weights (a .pt file)")
    parser.add_argument("--lr", type=float)
    parser.add_argument("--threads", type=int, help="PyTorch threads (0: its default)")
    parser.add_argument("--check-every", type=int, help="steps between checks on the validation split")
    parser.add_argument(
        "--feature-augment", action="store_true", help="random spectral tilt and a masked band on every crop"
    )
    parser.add_argument("--dropout", type=float, help="dropout before the GRU (training only)")
    parser.add_argument("--conv", dest="conv_channels", metavar="CONV", type=int, help="channels of both convolutions")
    parser.add_argument("--hidden", dest="gru_hidden", metavar="HIDDEN", type=int, help="GRU state size")
    parser.add_argument(
        "--ema", type=float, help="check and keep a moving average of the weights with this decay per step (0: off)"
    )
    parser.add_argument("--closure-weight", type=float, help="multiply PP's viseme loss weight by this")
    parser.add_argument(
        "--window-loss",
        dest="window_weight",
        metavar="WINDOW_LOSS",
        type=float,
        help="weight of a viseme loss that accepts any label the reference has within ±30 ms, PP excepted "
        "(window_loss)",
    )
    parser.add_argument(
        "--lookahead", type=int, help=f"future feature frames the network sees ({LOOKAHEAD}: 50 ms of audio, 1: 20 ms)"
    )
    parser.add_argument(
        "--checkpoints",
        action="store_true",
        help="save every checked state under <out dir>/checkpoints/ for models.tune",
    )
    # one place for the defaults, the dataclass: set_defaults gives each flag its field's default
    parser.set_defaults(**{f.name: f.default for f in fields(TrainConfig) if f.default is not MISSING})
    return parser


def config_from_command_line(argv: list[str] | None = None) -> TrainConfig:
    """The TrainConfig that these flags (default: the process's) ask for."""
    return TrainConfig(**vars(command_line().parse_args(argv)))


def main() -> None:
    report = train(config_from_command_line())
    print(json.dumps({k: v for k, v in report.items() if k != "history"}, indent=2))


if __name__ == "__main__":
    main()
