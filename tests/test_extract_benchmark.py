"""The extraction benchmark runs end to end on a tiny configuration (no timing assertions: machines are
noisy), and the README's "Video in" block is the committed benchmark output."""

from __future__ import annotations

import json
from pathlib import Path

from readme_blocks import check_committed_blocks, run_benchmark

from benchmarks.extract import RESULTS, render_markdown

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_extract_benchmark_runs_end_to_end(tmp_path):
    result = run_benchmark("extract", "--tiny", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    data = json.loads((tmp_path / "extract.json").read_text())
    assert list(data["clips_per_s"]) == ["decode only", "model only", "end to end"]
    assert all(rate > 0 for rate in data["clips_per_s"].values())
    assert data["windows"] == 12  # one 1-second video at 25 fps: 12 back-to-back windows of 2 frames
    assert {k: v["seconds"] for k, v in data["rss"].items()} == {"short": 1, "long": 3}
    assert all(v["peak_rss_mb"] > 50 for v in data["rss"].values())  # a process that holds a ResNet-50
    markdown = (tmp_path / "extract.md").read_text()
    assert markdown.strip() == render_markdown(data) and render_markdown(data) in result.stdout


def test_readme_video_in_block_is_the_committed_benchmark_output():
    check_committed_blocks("extract-benchmark", RESULTS, "extract.json", "extract.md", render_markdown)


def test_readme_words_on_the_benchmark_match_its_figures():
    readme = (REPO_ROOT / "README.md").read_text()
    data = json.loads((RESULTS / "cpu-amd-epyc" / "extract.json").read_text())
    rates, rss = data["clips_per_s"], data["rss"]
    kept = rates["end to end"] / rates["model only"]
    assert f"the pipeline kept {kept:.2f} of the model's speed" in readme
    assert ("short of the 0.9 aimed for" in readme) == (kept < 0.9)
    assert rss["long"]["seconds"] >= 60 * rss["short"]["seconds"]
    grew = rss["long"]["peak_rss_mb"] > 1.1 * rss["short"]["peak_rss_mb"]
    assert ("Peak memory did not grow with the video's length" in readme) == (not grew)


def test_readme_words_on_the_xeon_rows_match_their_figures():
    from benchmarks.extract import cpu_time_ceiling

    readme = " ".join((REPO_ROOT / "README.md").read_text().split())  # the words, whatever the line breaks
    data = json.loads((RESULTS / "cpu-intel-r-xeon-r-processor" / "extract.json").read_text())
    rates, processes = data["clips_per_s"], data["processes"]
    engine, command = rates["end to end"] / rates["model only"], processes["1"]["clips_per_s"] / rates["model only"]
    assert (f"Here the engine kept {engine:.2f} of the model's speed and the command on one process {command:.2f} "
            f"({processes['1']['clips_per_s']:.2f} against {rates['model only']:.2f} clips/s)") in readme
    ceiling = cpu_time_ceiling(rates, data.get("cores", data["cpu_threads"]), data["cpu_threads"])
    assert ceiling < 0.95 and f"caps end to end at {ceiling:.2f} of model only" in readme
    speedup = processes["2"]["clips_per_s"] / processes["1"]["clips_per_s"]
    assert f"(`--nproc 2`) ran {speedup:.2f}x one process" in readme
    beat = processes["2"]["clips_per_s"] > rates["model only"]
    assert ("beat the single process's model-only rate" in readme) == beat
    rss = data["rss"]
    ratio = rss["long"]["peak_rss_mb"] / rss["short"]["peak_rss_mb"]
    assert ratio < 1.1 and f"Peak memory did not grow with the video's length ({ratio:.2f})" in readme


def test_readme_words_on_the_default_crop_rows_match_their_figures():
    from benchmarks.extract import cpu_time_ceiling

    readme = " ".join((REPO_ROOT / "README.md").read_text().split())
    data = json.loads((RESULTS / "cpu-intel-r-xeon-r-processor-224" / "extract.json").read_text())
    rates, processes = data["clips_per_s"], data["processes"]
    assert data["clip"] == [16, 224, 224]
    kept = rates["end to end"] / rates["model only"]
    ceiling = cpu_time_ceiling(rates, data.get("cores", data["cpu_threads"]), data["cpu_threads"])
    assert kept >= 0.95 and f"the engine kept {kept:.2f} of the model's speed, above the 0.95 aimed for" in readme
    assert f"(the ceiling here is {ceiling:.2f})" in readme
    speedup = processes["2"]["clips_per_s"] / processes["1"]["clips_per_s"]
    assert f"two processes ran {speedup:.2f}x one process" in readme
    above = processes["1"]["clips_per_s"] > rates["model only"]
    assert ("The command's one-process rate came out above the engine's model-only rate" in readme) == above


def test_the_ceiling_is_the_cpu_time_bound():
    from benchmarks.extract import cpu_time_ceiling

    # model 4 clips/s on 2 threads: 0.5 core-s a clip; decode 8 clips/s on one core: 0.125 core-s; 2 cores
    assert cpu_time_ceiling({"model only": 4.0, "decode only": 8.0}, cores=2, threads=2) == 2 / 2.5
    assert cpu_time_ceiling({"model only": 4.0, "decode only": 8.0}, cores=16, threads=2) == 1.0  # cores to spare


def test_process_rows_come_from_the_command_summary_and_render():
    from benchmarks.extract import summary_rates

    line = ("[random weights] summary: 4 written, 0 skipped (complete), 0 failed; 30 windows in 12.5 s (2.4 clips/s) "
            "by 2 processes -> out")
    rates = summary_rates(line)
    assert rates == {"videos_per_min": 60 * 4 / 12.5, "clips_per_s": 30 / 12.5}
    data = json.loads((RESULTS / "cpu-amd-epyc" / "extract.json").read_text())
    plain = render_markdown(data)
    rows = render_markdown(dict(data, processes={"1": rates, "2": rates})).splitlines()
    assert rows[:len(plain.splitlines())] == plain.splitlines()
    assert rows[-2:] == ["| 1 process | 19.2 | 2.40 |", "| 2 processes | 19.2 | 2.40 |"]


def test_the_optimized_path_is_measured_against_its_own_model_only_rate():
    """``--optimized`` rows (the path of a long extract job, compiled: not run here) are rendered against the
    optimized model's rate, the plain rows against the plain model's."""
    data = json.loads((RESULTS / "cpu-amd-epyc" / "extract.json").read_text())
    data["clips_per_s"].update({"model only, optimized path": 8.0, "end to end, optimized path": 2.0})
    markdown = render_markdown(data)
    kept = data["clips_per_s"]["end to end"] / data["clips_per_s"]["model only"]
    assert f"| end to end | {data['clips_per_s']['end to end']:.2f} | {kept:.2f} |" in markdown
    assert "| model only, optimized path | 8.00 | 1.00 |" in markdown
    assert "| end to end, optimized path | 2.00 | 0.25 |" in markdown
    decode = data["clips_per_s"]["decode only"]  # the faster model leaves less CPU time to decoding
    assert f"; {min(1.0, 2 / (2 + 8.0 / decode)):.2f} for the optimized path." in markdown
    assert "for the optimized path" not in render_markdown(json.loads((RESULTS / "cpu-amd-epyc" / "extract.json"
                                                                        ).read_text()))


def test_readme_words_on_the_optimized_path_rows_match_their_figures():
    from benchmarks.extract import OPTIMIZED, cpu_time_ceiling

    readme = " ".join((REPO_ROOT / "README.md").read_text().split())
    data = json.loads((RESULTS / "cpu-intel-r-xeon-r-processor-224-optimized" / "extract.json").read_text())
    rates = data["clips_per_s"]
    assert data["clip"] == [16, 224, 224]
    model_x = rates["model only" + OPTIMIZED] / rates["model only"]
    end_x = rates["end to end" + OPTIMIZED] / rates["end to end"]
    assert f"ran {model_x:.1f}x the plain model's model-only rate and {end_x:.1f}x its end-to-end rate" in readme
    cores, threads = data.get("cores", data["cpu_threads"]), data["cpu_threads"]
    kept = {path: rates["end to end" + path] / rates["model only" + path] for path in ("", OPTIMIZED)}
    ceiling = {path: cpu_time_ceiling(rates, cores, threads, path) for path in ("", OPTIMIZED)}
    assert ceiling[OPTIMIZED] < ceiling[""] and kept[OPTIMIZED] <= ceiling[OPTIMIZED] + 0.02
    assert (f"end to end kept {kept[OPTIMIZED]:.2f} of the optimized model's speed, against a ceiling of "
            f"{ceiling[OPTIMIZED]:.2f} ({kept['']:.2f} and {ceiling['']:.2f} for the plain model)") in readme
