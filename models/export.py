"""Export the trained network's streaming step to ONNX: static shapes, opset 17, only MatMul / Conv /
Relu / Sigmoid / Tanh / Softmax-class operators that TensorRT 10 runs natively. The model's facts
(window, look-ahead, output names) travel inside the file as metadata.

Training exports on its own; to re-export saved weights (e.g. after changing the output stage):

    python -m models.export models/mouth.pt --out firmware_app/assets/models/mouth.onnx
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import onnx
import torch

from firmware_app.shapes import BLENDSHAPES, VISEMES
from models.net import N_FEATURES, WINDOW, MouthChunk, MouthNet, MouthStep, read_checkpoint

OPSET = 17


CHUNK = 100  # frames per call of the offline (analysis) graph


def chunk_path(step_path: Path) -> Path:
    """The offline graph ships beside the streaming one: mouth.onnx → mouth.chunk.onnx."""
    return step_path.with_suffix(".chunk.onnx")


def export_onnx(net: MouthNet, out: Path, corpus: Path | None = None) -> Path:
    """The streaming step (`out`) and the same network unrolled over CHUNK frames (`chunk_path(out)`)."""
    _export(MouthStep(net).eval(), WINDOW, net, out)
    _export(MouthChunk(net, CHUNK).eval(), CHUNK + WINDOW - 1, net, chunk_path(out))
    return out


def _export(module: torch.nn.Module, frames: int, net: MouthNet, out: Path) -> None:
    window = torch.zeros(1, frames, N_FEATURES)
    state = torch.zeros(1, net.hidden)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.onnx")
    torch.onnx.export(
        module,
        (window, state),
        str(tmp),
        input_names=["features", "state"],
        output_names=["visemes", "blendshapes", "next_state"],
        opset_version=OPSET,
        dynamic_axes=None,
        dynamo=False,
    )
    model = onnx.load(str(tmp))
    metadata = {
        "ventriloquist.window": str(WINDOW),
        "ventriloquist.context": str(net.context),
        "ventriloquist.lookahead_frames": str(net.lookahead),
        "ventriloquist.hop_s": "0.01",
        "ventriloquist.visemes": json.dumps(list(VISEMES)),
        "ventriloquist.blendshapes": json.dumps(list(BLENDSHAPES)),
        "ventriloquist.features": f"level+{N_FEATURES - 1} log-mel, firmware_app.audio.features",
    }
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    onnx.save(model, str(out))
    tmp.unlink()


def write_golden(onnx_path: Path, steps: int = 300) -> Path:
    """Parity reference for other backends: real feature windows from the bundled speech, the GRU
    state before each step, and ONNX Runtime's outputs (firmware_app.inference.parity reads it)."""
    import onnxruntime as ort

    from firmware_app.assets import BUNDLED_DIR
    from firmware_app.audio.features import features_of
    from firmware_app.inference.parity import golden_path
    from firmware_app.sources.audio_file import decode_audio

    features = features_of(decode_audio(BUNDLED_DIR / "speech.wav"))[100 : 100 + steps + WINDOW - 1]
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    state = np.zeros((1, session.get_inputs()[1].shape[1]), np.float32)
    windows, states, visemes, blendshapes = [], [], [], []
    for i in range(steps):
        window = features[None, i : i + WINDOW].astype(np.float32)
        v, b, next_state = session.run(None, {"features": window, "state": state})
        windows.append(window[0])
        states.append(state[0])
        visemes.append(v[0])
        blendshapes.append(b[0])
        state = next_state
    out = golden_path(onnx_path)
    np.savez_compressed(
        out,
        features=np.array(windows),
        state=np.array(states),
        visemes=np.array(visemes),
        blendshapes=np.array(blendshapes),
    )
    return out


def load_weights(weights: Path) -> MouthNet:
    """Saved weights (a checkpoint or a bare state dict, `models.net.read_checkpoint`) as the
    network they were trained as, in eval mode."""
    sizes, state = read_checkpoint(weights)
    net = MouthNet(state["mean"].reshape(-1), state["std"].reshape(-1), **sizes)
    net.load_weights(state)
    return net.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("weights", type=Path, help="the trained state dict (models/mouth.pt)")
    parser.add_argument("--out", type=Path, default=Path("firmware_app/assets/models/mouth.onnx"))
    args = parser.parse_args()
    export_onnx(load_weights(args.weights), args.out)
    print(f"wrote {args.out}, {chunk_path(args.out)} and {write_golden(args.out)}")


if __name__ == "__main__":
    main()
