"""The two-stream extraction benchmark runs end to end on a tiny configuration (no timing assertions: machines are
noisy), and the README's block is its committed output."""

from __future__ import annotations

import json

from readme_blocks import check_committed_blocks, run_benchmark

from benchmarks.two_stream import CONFIGURATIONS, RESULTS, render_markdown


def test_two_stream_benchmark_runs_end_to_end(tmp_path):
    result = run_benchmark("two_stream", "--tiny", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    data = json.loads((tmp_path / "two_stream.json").read_text())
    assert list(data["rows"]) == list(CONFIGURATIONS)
    for row in data["rows"].values():
        # two 0.2 s videos at 25 fps (5 frames): stacks of 3 frames every 2, two per video
        assert (row["videos"], row["windows"]) == (2, 4) and row["seconds"] > 0
        assert row["videos_per_minute"] == 60 * row["videos"] / row["seconds"]
    assert (tmp_path / "two_stream.md").read_text().strip() == render_markdown(data)


def test_readme_two_stream_block_is_the_committed_benchmark_output():
    check_committed_blocks("two-stream-benchmark", RESULTS, "two_stream.json", "two_stream.md", render_markdown)
