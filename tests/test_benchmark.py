"""The benchmark runs end to end on a tiny configuration (no timing assertions: machines are noisy)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_benchmark_runs_end_to_end(tmp_path):
    result = subprocess.run([sys.executable, "-m", "benchmarks.run", "--tiny", "--out", str(tmp_path)],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    data = json.loads((tmp_path / "results.json").read_text())
    model = data["models"]["i3resnet50"]
    variants = model["forward"]["1"]
    assert {"plain fp32", "naive baseline", "optimized fp32", "optimized bf16"} <= set(variants)
    assert variants["plain fp32"]["ratio_to_plain"] == 1.0
    assert variants["optimized fp32"]["rel_l2_error"] < 1e-4 and variants["optimized bf16"]["rel_l2_error"] < 0.03
    assert variants["naive baseline"]["rel_l2_error"] < 1e-5  # the baseline computes the same network
    assert model["gflops_per_clip"] > 0 and data["peak_gflops"]["bfloat16"] > 0
    assert set(model["construction"]) == {"i3zoo", "naive"}
    markdown = (tmp_path / "results.md").read_text()
    assert "| variant | batch | ms / clip | clips / s | GFLOP/s | vs plain fp32 | rel. L2 error |" in markdown
    assert markdown in result.stdout


def test_readme_performance_section_is_the_committed_benchmark_output():
    import re

    from benchmarks.run import render_markdown

    results = REPO_ROOT / "benchmarks" / "results"
    data = json.loads((results / "results.json").read_text())
    markdown = (results / "results.md").read_text()
    assert markdown == render_markdown(data)  # the table is computed from the measured JSON
    readme = (REPO_ROOT / "README.md").read_text()
    section = re.search(r"<!-- benchmark:start -->\n(.*?)\n<!-- benchmark:end -->", readme, re.S).group(1)
    assert section.strip() == markdown.strip()
    assert (results / "scaling.png").stat().st_size > 0
