"""The training benchmark runs on a tiny configuration and writes what it prints (no timing assertions:
machines are noisy), and the README's training-speed block is the committed benchmark output."""

from __future__ import annotations

import json

from readme_blocks import check_committed_blocks, run_benchmark

from benchmarks.train import RESULTS, render_markdown


def test_train_benchmark_runs_end_to_end(tmp_path):
    result = run_benchmark("train", "--tiny", "--processes", "1", "--precisions", "fp32", "--device", "cpu", "--out",
                           str(tmp_path))
    assert result.returncode == 0, result.stderr
    data = json.loads((tmp_path / "train.json").read_text())
    rows = data["rows"]
    assert [(r["precision"], r["grad_checkpointing"]) for r in rows] == [("fp32", False), ("fp32", True)]
    assert all(r["clip"] == "4x32x32" and r["processes"] == 1 and "error" not in r for r in rows), rows
    assert all(r["clips_per_s"] > 0 and r["peak_memory_mb"] > 50 for r in rows)
    markdown = (tmp_path / "train.md").read_text()
    assert markdown.strip() == render_markdown(data) and render_markdown(data) in result.stdout


def test_readme_training_speed_block_is_the_committed_benchmark_output():
    check_committed_blocks("train-benchmark", RESULTS, "train.json", "train.md", render_markdown)
