"""The README's benchmark blocks are the committed benchmark output: one check for every benchmark; and
the benchmarks run as a user runs them."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Callable, Dict, List

REPO_ROOT = Path(__file__).resolve().parents[1]


def check_committed_blocks(tag: str, results: Path, json_name: str, markdown_name: str,
                           render: Callable[[Dict], str]) -> List[Path]:
    """Each ``results/<run>/`` holds ``json_name`` and the ``markdown_name`` it renders to, and README.md has that
    markdown between ``<!-- tag:<run>:start -->`` and ``<!-- tag:<run>:end -->``, for every run and no other.

    Returns:
        The run folders (at least one).
    """
    readme = (REPO_ROOT / "README.md").read_text()
    blocks = dict(re.findall(rf"<!-- {re.escape(tag)}:([\w.-]+):start -->\n(.*?)\n<!-- {re.escape(tag)}:\1:end -->",
                             readme, re.S))
    runs = sorted(p.parent for p in results.glob(f"*/{json_name}"))
    assert runs and sorted(blocks) == [run.name for run in runs], (sorted(blocks), runs)
    for run in runs:
        data = json.loads((run / json_name).read_text())
        markdown = (run / markdown_name).read_text().strip()
        assert markdown == render(data).strip(), f"{run.name}: {markdown_name} is not what its {json_name} renders to"
        assert blocks[run.name].strip() == markdown, f"README's {run.name} block differs from its {markdown_name}"
    return runs


def run_benchmark(module: str, *args: str) -> subprocess.CompletedProcess:
    """``python -m benchmarks.<module> ARGS`` from the repository root, as a user runs it (10 minutes at most)."""
    return subprocess.run([sys.executable, "-m", f"benchmarks.{module}", *args], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=600)
