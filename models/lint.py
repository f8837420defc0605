"""Lint an exported graph for the Jetson: static shapes only, and only operators that TensorRT 10.3's
ONNX parser runs natively (checked against onnx-tensorrt's docs/operators.md for TensorRT 10, opset
9–20). The allow-list is deliberately narrow; extend it only after checking that matrix.

    python -m models.lint firmware_app/assets/models/mouth.onnx
"""

from __future__ import annotations

import sys
from pathlib import Path

import onnx

MAX_OPSET = 20
TENSORRT_10_OPS = frozenset(
    "Abs Add BatchNormalization Cast Clip Concat Constant ConstantOfShape Conv Div Equal Erf Exp Expand "
    "Flatten Gather Gemm Greater Identity LayerNormalization LeakyRelu Less Log MatMul Max Min Mul Neg Pad "
    "Pow ReduceMean ReduceSum Relu Reshape Shape Sigmoid Slice Softmax Split Sqrt Squeeze Sub Tanh "
    "Transpose Unsqueeze Where".split()
)
CONTROL_FLOW = frozenset({"Loop", "If", "Scan"})  # no data-dependent control flow on the appliance


def lint(path: Path) -> list[str]:
    """Every problem found; empty means the graph is fit for TensorRT 10.3."""
    model = onnx.load(str(path))
    problems = []
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx") and opset.version > MAX_OPSET:
            problems.append(f"opset {opset.version} is newer than TensorRT 10 parses (≤ {MAX_OPSET})")
    for node in model.graph.node:
        if node.op_type in CONTROL_FLOW:
            problems.append(f"{node.name or node.op_type}: control-flow operator {node.op_type}")
        elif node.op_type not in TENSORRT_10_OPS or node.domain not in ("", "ai.onnx"):
            problems.append(
                f"{node.name or node.op_type}: operator {node.domain or 'ai.onnx'}.{node.op_type} is not on the "
                f"TensorRT 10 list"
            )
    for value in list(model.graph.input) + list(model.graph.output):
        dims = value.type.tensor_type.shape.dim
        if not all(d.HasField("dim_value") and d.dim_value > 0 for d in dims):
            shape = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in dims]
            problems.append(f"{value.name}: dynamic shape {shape}")
    return problems


def main() -> int:
    failed = False
    for name in sys.argv[1:]:
        problems = lint(Path(name))
        print(f"{name}: " + ("OK" if not problems else f"{len(problems)} problem(s)"))
        for problem in problems:
            print(f"  {problem}")
        failed |= bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
