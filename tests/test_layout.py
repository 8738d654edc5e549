"""The package's layout holds: wings, no import cycle, no import from ``weights/`` into ``models/``, and a
wheel that carries every subpackage, the card templates and the label files.

The import graph is read from the source with ``ast``: every ``import`` statement, at module level or inside a
function (a lazy import closes a cycle as surely as an eager one, only later). ``from X import name`` is an
edge to the package ``X`` and, where ``name`` is a submodule, to ``X.name`` as well.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Dict, List, Set

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGE_DIR = REPO / "i3zoo"
WINGS = ("models", "weights", "video", "engines", "train", "cli")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> Dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE_DIR.rglob("*.py"))}


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph() -> Dict[str, Set[str]]:
    """module -> the i3zoo modules its import statements run.

    Importing ``a.b.c`` runs ``a.b`` first, so a target's parent packages count too, except those that are
    also the importer's own parents (Python is already running them). A parent named explicitly
    (``from .. import x``) always counts.
    """
    modules = _modules()
    graph: Dict[str, Set[str]] = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        explicit: Set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                explicit.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(name, is_package, node)
                explicit.add(base)
                explicit.update(f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in modules)
        own_parents = _parents(name)
        implied = {p for target in explicit for p in _parents(target)} - own_parents
        graph[name] = {t for t in explicit | implied if t in modules and t != name}
    return graph


def _parents(module: str) -> Set[str]:
    return {".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)}


def find_cycle(graph: Dict[str, Set[str]]) -> List[str]:
    """One import cycle as a list of modules (first == last), or [] if there is none."""
    state: Dict[str, int] = {}  # 1: on the current path, 2: done
    path: List[str] = []

    def visit(node: str) -> List[str]:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        state[node] = 2
        path.pop()
        return []

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return []


def test_the_wings_exist_and_say_what_they_may_import():
    for wing in WINGS:
        init = PACKAGE_DIR / wing / "__init__.py"
        assert init.is_file(), f"missing wing {wing}/"
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert doc and "May import" in doc, f"{wing}/__init__.py must say what it may import"


def test_the_graph_reader_sees_imports_and_cycles():
    graph = import_graph()
    # function-level (lazy) imports are edges too (the ImageNet source imports the facts only to write a card)
    assert "i3zoo.facts" in graph["i3zoo.weights.torchvision_imagenet"]
    assert {"i3zoo.weights", "i3zoo.weights.inflate"} <= graph["i3zoo.models.layers"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_between_modules():
    cycle = find_cycle(import_graph())
    assert not cycle, "import cycle: " + " -> ".join(cycle)


def test_weights_import_nothing_from_models():
    offending = [
        f"{module} imports {target}"
        for module, targets in import_graph().items() if module.startswith("i3zoo.weights")
        for target in targets if target == "i3zoo.models" or target.startswith("i3zoo.models.")
    ]
    assert not offending, offending


def test_engines_import_nothing_from_models_train_or_the_cli():
    # engines reach models through the registry; train and cli sit on top of them
    offending = [
        f"{module} imports {target}"
        for module, targets in import_graph().items() if module.startswith("i3zoo.engines")
        for target in targets if target.split(".")[:2] in (["i3zoo", "models"], ["i3zoo", "train"], ["i3zoo", "cli"])
    ]
    assert not offending, offending


def test_nothing_imports_the_package_root_or_the_cli():
    # the root imports every wing, and the command line sits on top of everything (only `python -m i3zoo` runs it)
    offending = [f"{module} imports {target}" for module, targets in import_graph().items()
                 for target in targets
                 if target == "i3zoo" or (target.startswith("i3zoo.cli") and module != "i3zoo.__main__"
                                          and not module.startswith("i3zoo.cli"))]
    assert not offending, offending


# One interpreter loads the third-party libraries once (torch and timm take ~7 s to import on 2 cores), then
# forks a child per module: each child starts with no i3zoo module loaded and imports just that one.
_IMPORT_EACH_ALONE = """
import importlib, os, sys, traceback
import huggingface_hub, safetensors, timm, torch, torchvision
assert not [m for m in sys.modules if m == "i3zoo" or m.startswith("i3zoo.")]
failed = []
for name in sys.argv[1:]:
    pid = os.fork()
    if pid == 0:
        try:
            importlib.import_module(name)
        except BaseException:
            print(f"--- import {name} failed:", file=sys.stderr)
            traceback.print_exc()
            sys.stderr.flush()
            os._exit(1)
        os._exit(0)
    if os.waitpid(pid, 0)[1]:
        failed.append(name)
print("failed:", " ".join(failed))
sys.exit(1 if failed else 0)
"""


def test_every_module_imports_on_its_own_in_a_fresh_interpreter():
    names = sorted(n for n in _modules() if n != "i3zoo.__main__")  # __main__ runs the command line
    result = subprocess.run([sys.executable, "-c", _IMPORT_EACH_ALONE, *names], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr[-5000:]
    assert result.stdout.strip() == "failed:"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # a clean copy: an in-tree build would reuse (and ship) whatever an earlier build left in build/
    source = out / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".hypothesis"))
    # no build isolation: setuptools and wheel come with the test extra, so no download is needed
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(out), str(source)], check=True, timeout=600, cwd=out)
    (found,) = out.glob("i3zoo-*.whl")
    return found


def test_the_wheel_holds_every_subpackage_card_template_and_label_file(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for module, path in _modules().items():
        assert path.relative_to(REPO).as_posix() in names, f"{module} is missing from the wheel"
    templates = sorted((PACKAGE_DIR / "weights" / "card_templates").glob("*.md"))
    assert templates
    for template in templates:
        assert template.relative_to(REPO).as_posix() in names, f"{template.name} is missing from the wheel"
    labels = sorted((PACKAGE_DIR / "weights" / "labels").glob("*.txt"))
    assert [p.name for p in labels] == ["kinetics400.txt"]
    for label_file in labels:  # the class names `i3zoo predict` prints for Kinetics weights
        assert label_file.relative_to(REPO).as_posix() in names, f"{label_file.name} is missing from the wheel"
    assert not any(n.startswith(("tests/", "benchmarks/", "scripts/")) for n in names)


#: the longest function allowed in i3zoo/ (issue 17): longer ones are split into named steps
MAX_FUNCTION_LINES = 80


def test_no_function_in_the_package_is_longer_than_80_lines():
    long = []
    for module, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - min([node.lineno, *(d.lineno for d in node.decorator_list)]) + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{module}.{node.name}: {lines} lines")
    assert not long, long
