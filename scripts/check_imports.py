"""The end of `scripts/setup.sh`: every runtime module imports in the venv, and each comes from the
venv itself, except those that may only come from the system (JetPack's tensorrt). With
--system-site-packages, JetPack's numpy-1 builds (python3-numpy, its OpenCV) could shadow the
venv's. Usage: python scripts/check_imports.py MODULE… [--system MODULE…]; exit 1 names the cause."""

from __future__ import annotations

import importlib
import importlib.metadata
import sys
from pathlib import Path


def check(modules: list[str], system: set[str]) -> list[str]:
    problems = []
    venv = Path(sys.prefix).resolve()
    for name in modules:
        try:
            module = importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - any import failure is the finding
            problems.append(f"{name} does not import: {type(exc).__name__}: {exc}")
            continue
        where = Path(getattr(module, "__file__", "") or "").resolve()
        if name not in system and venv not in where.parents:
            problems.append(f"{name} comes from {where}, not the venv {venv}: a system package shadows it")
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        wanted = importlib.metadata.version("numpy")
        if numpy.__version__ != wanted:
            problems.append(f"numpy {numpy.__version__} was imported, but the venv has {wanted}")
    return problems


def main(argv: list[str]) -> int:
    system = set(argv[argv.index("--system") + 1 :]) if "--system" in argv else set()
    modules = [m for m in argv if m != "--system"]
    problems = check(modules, system)
    for problem in problems:
        print(f"setup: {problem}", file=sys.stderr)
    if problems:
        print(
            "setup: fix: rm -rf .venv and run the setup again; remove python3-numpy if it is still shadowed",
            file=sys.stderr,
        )
        return 1
    print(f"setup: imports OK ({', '.join(modules)})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
