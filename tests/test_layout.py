"""The house rules, read from the source with `ast` (nothing is imported): no import cycles, the
runtime (`firmware_app`) never reaches into the lab (`models`, `calibration`), and firmware_app's
top level holds only the few modules every stage shares. And the installed package is the whole
appliance: the wheel carries the runtime's files, no lab, and runs its mouth model without a checkout.

Every import statement counts, at module level or inside a function or `if TYPE_CHECKING:`: a
function-level import is still a dependency (it runs later, but it runs), and a cycle hidden in
one is how the next module-level import turns into an ImportError."""

from __future__ import annotations

import ast
import importlib
import json
import os
import subprocess
import sys
import textwrap
import zipfile
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import PROJECT

RUNTIME = "firmware_app"
LAB = ("models", "calibration")
# firmware_app/*.py: what every stage shares. Anything else belongs in its stage's package
# (audio, face, web, tools, platform, runners, appliance, sources, sinks, mouth, inference, render).
TOP_LEVEL_MODULES = {
    "__init__",
    "__main__",
    "cli",
    "config",
    "errors",
    "frames",
    "shapes",
    "uri",
    "assets",
    "pipeline",
    "resource",
}


@dataclass(frozen=True)
class Import:
    """`importer` depends on `imported` through the statement at `file:line`."""

    importer: str
    imported: str
    file: str  # relative to the tree's root
    line: int
    where: str  # "" at module level, else "in a function" or "under TYPE_CHECKING"

    def __str__(self) -> str:
        where = f", {self.where}" if self.where else ""
        return f"{self.importer} imports {self.imported} ({self.file}:{self.line}{where})"


def modules_under(root: Path, packages: tuple[str, ...]) -> dict[str, Path]:
    """Every module of `packages` under `root` by its dotted name (a package by its __init__.py)."""
    modules = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


class _ImportStatements(ast.NodeVisitor):
    """Each import statement of a module with its line and whether it sits in a function or a
    TYPE_CHECKING block (for the message only: all of them count)."""

    def __init__(self) -> None:
        self.found: list[tuple[ast.Import | ast.ImportFrom, str]] = []
        self._where: list[str] = []

    def _inside(self, node: ast.AST, where: str) -> None:
        self._where.append(where)
        self.generic_visit(node)
        self._where.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._inside(node, "in a function")

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        if not (
            (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
            or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
        ):
            self.generic_visit(node)
            return
        self._where.append("under TYPE_CHECKING")
        for statement in node.body:
            self.visit(statement)
        self._where.pop()
        for statement in node.orelse:  # what runs when not type checking
            self.visit(statement)

    def visit_Import(self, node: ast.Import) -> None:
        self.found.append((node, self._where[-1] if self._where else ""))

    visit_ImportFrom = visit_Import  # type: ignore[assignment]


def _package_of(module: str, path: Path) -> str:
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def _absolute(node: ast.ImportFrom, module: str, path: Path) -> str:
    """The module a `from … import` names, its dots resolved against `module`'s package."""
    if not node.level:
        return node.module or ""
    base = _package_of(module, path).split(".")
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _ancestors(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(len(parts) - 1, 0, -1)]


def import_statements(path: Path) -> list[tuple[ast.Import | ast.ImportFrom, str]]:
    """Every import statement of the file at `path`, with where it sits (`Import.where`)."""
    statements = _ImportStatements()
    statements.visit(ast.parse(path.read_text(encoding="utf-8"), str(path)))
    return statements.found


def imports_of(module: str, path: Path, modules: dict[str, Path], root: Path) -> list[Import]:
    """What `module` depends on among `modules`, one entry per imported module (its first import).

    `import a.b.c` runs a/__init__, a/b/__init__ and a/b/c: a dependency on all three, except on
    the packages that contain `module` itself (they are already in sys.modules when it runs).
    `from pkg import name` depends on the submodule `pkg.name` when there is one, else on `pkg`."""
    own_packages = {module, *_ancestors(module)}
    found: dict[str, Import] = {}
    file = path.relative_to(root).as_posix()

    def depend(target: str, node: ast.stmt, where: str) -> None:
        for name in [target, *(package for package in _ancestors(target) if package not in own_packages)]:
            if name in modules and name != module and name not in found:
                found[name] = Import(module, name, file, node.lineno, where)

    for node, where in import_statements(path):
        if isinstance(node, ast.Import):
            for alias in node.names:
                depend(alias.name, node, where)
            continue
        source = _absolute(node, module, path)
        for alias in node.names:
            submodule = f"{source}.{alias.name}"
            if submodule in modules:
                depend(submodule, node, where)
            else:
                depend(source, node, where)
    return sorted(found.values(), key=lambda edge: edge.line)


def import_graph(root: Path = PROJECT, packages: tuple[str, ...] = (RUNTIME, *LAB)) -> dict[str, list[Import]]:
    modules = modules_under(root, packages)
    return {module: imports_of(module, path, modules, root) for module, path in modules.items()}


def strongly_connected(graph: dict[str, list[Import]]) -> list[list[str]]:
    """Tarjan's components of the graph with more than one module, each sorted, in name order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for edge in graph.get(module, []):
            if edge.imported not in index:
                visit(edge.imported)
                low[module] = min(low[module], low[edge.imported])
            elif edge.imported in on_stack:
                low[module] = min(low[module], index[edge.imported])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph)))
    for module in sorted(graph):
        if module not in index:
            visit(module)
    return sorted(components)


def shortest_cycle(graph: dict[str, list[Import]], start: str, within: set[str]) -> list[Import]:
    """The fewest imports that lead from `start` back to it, inside one component."""
    came_by: dict[str, Import] = {}
    queue = deque([start])
    while queue:
        module = queue.popleft()
        for edge in graph[module]:
            if edge.imported not in within or edge.imported in came_by:
                continue
            came_by[edge.imported] = edge
            if edge.imported == start:
                path = [edge]
                while path[0].importer != start:
                    path.insert(0, came_by[path[0].importer])
                return path
            queue.append(edge.imported)
    raise AssertionError(f"{start} is on no cycle within {sorted(within)}")


def describe_cycles(graph: dict[str, list[Import]]) -> list[str]:
    """One paragraph per component: its modules, then cycles through it until each module is on one."""
    paragraphs = []
    for component in strongly_connected(graph):
        members, shown, lines = set(component), set(), []
        for module in component:
            if module in shown:
                continue
            cycle = shortest_cycle(graph, module, members)
            shown.update(edge.importer for edge in cycle)
            lines.append("  " + " → ".join([cycle[0].importer, *(edge.imported for edge in cycle)]))
            lines += [f"      {edge}" for edge in cycle]
        paragraphs.append(f"import cycle among {', '.join(component)}:\n" + "\n".join(lines))
    return paragraphs


# --- the checker itself, on a made-up tree ---------------------------------------------------------


def _tree(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def test_the_checker_reads_every_kind_of_import_and_finds_the_cycle(tmp_path):
    _tree(
        tmp_path,
        {
            "app/__init__.py": "",
            "app/top.py": "import app.stage.deep\n",  # runs app/stage/__init__ too
            "app/stage/__init__.py": "from app.stage import helper\n",  # the submodule, not the package
            "app/stage/helper.py": "from . import sibling\nfrom .sibling import thing\n",
            "app/stage/sibling.py": "from app.stage.leaf import x\n",  # app.stage holds sibling: already running
            "app/stage/leaf.py": "x = 1\n",
            "app/stage/deep.py": "def later():\n    from app import top\n",
            "app/other.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from app.stage import "
            "deep\nimport json\n",
        },
    )
    graph = import_graph(tmp_path, ("app",))
    edges = {module: [edge.imported for edge in imports] for module, imports in graph.items()}
    assert edges == {
        "app": [],
        "app.top": ["app.stage.deep", "app.stage"],
        "app.stage": ["app.stage.helper"],
        "app.stage.helper": ["app.stage.sibling"],
        "app.stage.sibling": ["app.stage.leaf"],
        "app.stage.leaf": [],
        "app.stage.deep": ["app.top"],
        "app.other": ["app.stage.deep", "app.stage"],  # json is not ours
    }
    assert graph["app.stage.deep"][0].where == "in a function" and graph["app.other"][0].where == "under TYPE_CHECKING"
    assert strongly_connected(graph) == [["app.stage.deep", "app.top"]]
    (report,) = describe_cycles(graph)
    assert "app.stage.deep → app.top → app.stage.deep" in report
    assert "app.stage.deep imports app.top (app/stage/deep.py:2, in a function)" in report
    assert "app.top imports app.stage.deep (app/top.py:1)" in report


# --- the rules ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def graph() -> dict[str, list[Import]]:
    return import_graph()


def test_the_graph_covers_the_tree(graph):
    """A reader that missed the tree, or its function-level imports, would pass every rule below."""
    assert {"firmware_app.cli", "firmware_app.mouth.learned", "models.train", "calibration.fidelity"} <= set(graph)
    assert "firmware_app.mouth.learned" in {edge.imported for edge in graph["firmware_app.mouth"]}  # in a function


def test_no_import_cycles(graph):
    cycles = describe_cycles(graph)
    assert not cycles, (
        f"{len(cycles)} import cycle(s); function-level and TYPE_CHECKING imports count. Move what both "
        "sides need into a module below them (or pass it in) rather than hiding the import:\n\n" + "\n\n".join(cycles)
    )


def test_the_runtime_does_not_import_the_lab(graph):
    reaching = [
        str(edge)
        for module, imports in sorted(graph.items())
        if module.split(".")[0] == RUNTIME
        for edge in imports
        if edge.imported.split(".")[0] in LAB
    ]
    assert not reaching, (
        f"the runtime imports the lab ({', '.join(LAB)}), which is not installed with it (setup.py ships "
        f"{RUNTIME} only). Move what it needs into {RUNTIME}; the lab may import the runtime, not the other way:\n  "
        + "\n  ".join(reaching)
    )


def test_the_lab_imports_only_what_the_runtime_has():
    """The runtime's moves must not strand the lab: every module and name that models/ and
    calibration/ take from firmware_app exists there (the lab has no other check that runs all of
    its scripts' imports, several of which sit in functions)."""
    modules = modules_under(PROJECT, (RUNTIME, *LAB))
    stranded = []
    for module, path in sorted(modules.items()):
        if module.split(".")[0] not in LAB:
            continue
        for node, _ in import_statements(path):
            place = f"{path.relative_to(PROJECT).as_posix()}:{node.lineno}"
            if isinstance(node, ast.Import):
                wanted = [(alias.name, None) for alias in node.names]
            else:
                wanted = [(_absolute(node, module, path), alias.name) for alias in node.names]
            for source, name in wanted:
                if source.split(".")[0] != RUNTIME:
                    continue
                if source not in modules:
                    stranded.append(f"{place}: {source} does not exist")
                elif (
                    name not in (None, "*")
                    and f"{source}.{name}" not in modules
                    and not hasattr(importlib.import_module(source), name)
                ):
                    stranded.append(f"{place}: {source} has no {name}")
    assert not stranded, (
        "the lab imports what the runtime no longer has (moved? `git grep` its new home):\n  " + "\n  ".join(stranded)
    )


def test_firmware_app_top_level_holds_only_the_shared_modules():
    runtime = PROJECT / RUNTIME
    strays = sorted(path.stem for path in runtime.glob("*.py") if path.stem not in TOP_LEVEL_MODULES)
    stages = sorted(path.name for path in runtime.iterdir() if (path / "__init__.py").is_file())
    assert not strays, (
        f"{', '.join(f'{RUNTIME}/{name}.py' for name in strays)}: new modules go into their stage's package "
        f"({', '.join(stages)}); the top level is for what every stage shares: {', '.join(sorted(TOP_LEVEL_MODULES))}"
    )


# --- the installed package -----------------------------------------------------------------------

SHIPPED = (
    "firmware_app/assets/models/mouth.onnx",
    "firmware_app/assets/models/mouth.chunk.onnx",
    "firmware_app/assets/models/mouth.golden.npz",
    "firmware_app/assets/models/mouth20.onnx",
    "firmware_app/assets/models/mouth20.chunk.onnx",
    "firmware_app/assets/models/mouth20.golden.npz",
    "firmware_app/assets/portrait.jpg",
    "firmware_app/assets/speech.wav",
    "firmware_app/web/console/static/index.html",
    "firmware_app/face/enroll_script.txt",
)

# Run from an empty folder with only the unpacked wheel on the path: the settings' default model
# path must lead into the package, the model load, and one second of the bundled speech go through it.
WITHOUT_A_CHECKOUT = """
import importlib.util, json
import numpy as np
import firmware_app
from firmware_app.assets import BUNDLED_DIR, resolve_path
from firmware_app.audio.features import FeatureStream
from firmware_app.config import Settings
from firmware_app.frames import AudioBlock
from firmware_app.inference.parity import golden_path
from firmware_app.mouth import create_mouth_model
from firmware_app.sources.audio_file import decode_audio

settings = Settings()
model_path = resolve_path(settings.model.onnx_path())
model = create_mouth_model(settings.model, settings.inference)
speech = decode_audio(BUNDLED_DIR / "speech.wav")[:16000]
shapes = model.push(FeatureStream().push(AudioBlock(speech, 0.0))) + model.flush()
print(json.dumps({
    "package": firmware_app.__file__,
    "model": str(model_path.resolve()),
    "model_exists": model_path.is_file(),
    "golden_exists": golden_path(model_path).is_file(),
    "lab_importable": [name for name in ("models", "calibration") if importlib.util.find_spec(name)],
    "shapes": len(shapes),
    "widest_aperture": max(shape.aperture for shape in shapes),
}))
"""


def _checkout_files() -> list[str]:
    """The files a clean checkout of the working tree has: tracked or new, never git-ignored
    (a fetched face model or a build folder must not make the wheel look complete)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    return sorted(name for name in listed if name and (PROJECT / name).is_file())


def _build_wheel(source: Path, out: Path) -> Path:
    files = _checkout_files()
    for name in files:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_bytes((PROJECT / name).read_bytes())
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-w",
            str(out),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    (wheel,) = out.glob("ventriloquist-*.whl")
    return wheel


@pytest.mark.integration
def test_the_wheel_is_the_whole_runtime_and_runs_without_a_checkout(tmp_path):
    wheel = _build_wheel(tmp_path / "checkout", tmp_path / "dist")
    names = set(zipfile.ZipFile(wheel).namelist())
    in_tree = [name for name in _checkout_files() if name.startswith(f"{RUNTIME}/")]
    runtime_files = [n for n in in_tree if n.endswith(".py") or n.startswith(f"{RUNTIME}/web/console/static/")]
    missing = sorted({*SHIPPED, *runtime_files} - names)
    assert not missing, f"{wheel.name} lacks (setup.py's packages / package_data do not match them):\n  " + "\n  ".join(
        missing
    )
    lab = sorted(n for n in names if n.split("/")[0] in LAB)
    assert not lab, f"{wheel.name} ships the lab, which setup.py keeps out: {', '.join(lab[:10])}"

    installed, elsewhere = tmp_path / "installed", tmp_path / "elsewhere"
    zipfile.ZipFile(wheel).extractall(installed)
    elsewhere.mkdir()
    run = subprocess.run(
        [sys.executable, "-c", WITHOUT_A_CHECKOUT],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(installed)},
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert Path(result["package"]).resolve().is_relative_to(installed.resolve()), (
        f"imported {result['package']}, not the unpacked wheel"
    )
    assert Path(result["model"]).is_relative_to(installed.resolve()) and result["model_exists"], result
    assert result["golden_exists"], "the parity reference does not ship beside the model"
    assert result["lab_importable"] == [], "the lab was reachable, so this run did not prove the runtime needs none"
    assert 95 <= result["shapes"] <= 100, result  # one shape per 10 ms frame of the second
    assert result["widest_aperture"] > 0.2, result  # the bundled speech opens the mouth
