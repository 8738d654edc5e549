"""The compiled, frozen inference path and the rule that makes it the default of long jobs.

One tiny model (a one-block-per-stage I3ResNet on 4x32x32 clips) is compiled once, with Inductor's freezing, and
serves every check of the compiled path: equivalence with the plain model, no recompilation for a smaller or a
larger batch, freezing left off in Inductor's global config. The decision rule is a pure function of the job's
length, the measured time per clip and the hardware's bfloat16 kernels, all given here.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path

import pytest
import torch
import torch._dynamo
import torch._inductor.config
from conftest import relative_error
from video_samples import write_video

import i3zoo
from benchmarks.compile_cost import ANNOUNCED
from i3zoo.engines import LoadedModel, Predictor, choose_path, count_windows
from i3zoo.inference import COMPILE_SECONDS, COMPILED_SHARE, InferencePath, choose_inference_path, compile_options

CPU = torch.device("cpu")

REPO_ROOT = Path(__file__).resolve().parents[1]


def _clips(count: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(count, 3, 4, 32, 32, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model = i3zoo.I3ResNet(block_counts=(1, 1, 1, 1), num_classes=5).eval()
    with torch.no_grad():  # BatchNorm statistics that are not the identity, so that folding them is visible
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm3d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return model


@pytest.fixture(scope="module")
def first_call(tiny):
    """The tiny model, optimized and compiled with freezing, and what its first call (a batch of 3) printed."""
    fast = i3zoo.optimize_for_inference(tiny, compile=True)
    with contextlib.redirect_stderr(io.StringIO()) as printed:
        fast(_clips(3))
    return fast, printed.getvalue()


@pytest.fixture(scope="module")
def compiled(first_call):
    return first_call[0]


def test_compiled_frozen_model_matches_the_plain_model_and_freezing_stays_ours(tiny, first_call, capfd):
    compiled, printed = first_call
    assert compiled.batch_size == 3 and compiled.first_call_seconds > 0
    (line,) = [line for line in printed.splitlines() if line.startswith("i3zoo:")]  # torch may warn around it
    assert line.startswith(f"i3zoo: compiled I3ResNet for batches of 3 in {compiled.first_call_seconds:.1f} s")
    assert "Inductor's cache in " in line
    # the figure benchmarks/compile_cost.py reads from a fresh interpreter's stderr, for the README
    assert float(ANNOUNCED.search(line).group(1)) == round(compiled.first_call_seconds, 1)
    assert torch._inductor.config.freezing is False  # passed to our compile only, never left set
    assert compile_options(CPU) == {"freezing": True}
    assert compile_options(torch.device("cuda")) == {"freezing": True, "triton.cudagraphs": True}
    clips = _clips(3, seed=1)
    with torch.no_grad():
        reference = tiny(clips)
    assert relative_error(compiled(clips), reference) <= 1e-4
    silent = i3zoo.optimize_for_inference(tiny, compile=True, announce=False)  # not called: not compiled yet
    assert silent.first_call_seconds is None and silent.batch_size is None
    assert "i3zoo:" not in capfd.readouterr().err  # the first call's cost is printed once, not at each call


def test_the_weights_are_frozen_into_the_compiled_graph(tiny, compiled):
    """Freezing made the weights constants of the graph: changing a parameter afterwards changes nothing.

    Unfrozen, the weights would be inputs of every call and the change would show. (Passing the option to
    ``torch.compile`` alone froze nothing: Dynamo reads Inductor's global flag while it traces.)
    """
    clips = _clips(3, seed=3)
    before = compiled(clips)
    weight = compiled.model.fc.weight
    kept = weight.clone()
    with torch.no_grad():
        weight.add_(1.0)
        try:
            after = compiled(clips)
            unfrozen = i3zoo.inference.InferenceModel(compiled.model, dtype=torch.float32, channels_last=True,
                                                       compiled=False)(clips)
        finally:
            weight.copy_(kept)
    assert torch.equal(after, before)
    assert relative_error(unfrozen, before) > 1e-2  # the change itself is visible to a model that reads weights


def test_smaller_and_larger_batches_do_not_recompile(tiny, compiled):
    clips = _clips(7, seed=2)
    with torch.no_grad():
        reference = tiny(clips)
    with torch._dynamo.config.patch(error_on_recompile=True):
        last = compiled(clips[:1])  # the last, partial batch of a job: padded to 3
        larger = compiled(clips)  # in chunks of 3: 3 + 3 + 1
    assert last.shape == (1, 5) and larger.shape == (7, 5)
    assert relative_error(last, reference[:1]) <= 1e-4 and relative_error(larger, reference) <= 1e-4


def _rule(clips, seconds_per_clip=0.5, **options):
    return choose_inference_path(CPU, clips=clips, seconds_per_clip=lambda: seconds_per_clip, **options)


@pytest.mark.parametrize("bf16_kernels, precision", [(True, "bfloat16"), (False, "float32")])
def test_a_long_job_compiles_in_the_precision_the_hardware_runs_fast(bf16_kernels, precision):
    path = _rule(10_000, bfloat16_kernels=bf16_kernels)
    assert path == InferencePath(precision, optimized=True, compiled=True, reason=path.reason)
    assert path.record() == {"precision": precision, "optimized": True, "compiled": True}
    assert "compiled" in path.reason and (bf16_kernels or "no fast bfloat16 kernels" in path.reason)


@pytest.mark.parametrize("bf16_kernels", [True, False])
def test_a_short_job_runs_the_optimized_copy_in_float32_eagerly(bf16_kernels):
    assert _rule(3, bfloat16_kernels=bf16_kernels).record() == {
        "precision": "float32", "optimized": True, "compiled": False}


def test_no_optimize_runs_the_plain_model_and_refuses_what_only_a_copy_does():
    def untimed():
        raise AssertionError("the plain model asked for: nothing to measure")
    for clips in (3, 10_000):
        path = choose_inference_path(CPU, clips=clips, seconds_per_clip=untimed, optimize=False)
        assert path.record() == {"precision": "float32", "optimized": False, "compiled": False}
    assert choose_inference_path(CPU, clips=3, seconds_per_clip=untimed, optimize=False, precision="float32",
                                 compile=False).record()["optimized"] is False
    for asked in (dict(compile=True), dict(precision="bfloat16")):
        with pytest.raises(ValueError, match=r"optimize=False \(--no-optimize\) runs the plain float32 model"):
            choose_inference_path(CPU, clips=3, seconds_per_clip=untimed, optimize=False, **asked)


def test_the_break_even_is_the_compile_cost_over_the_time_saved_per_clip():
    # float32 on a machine without bfloat16 kernels: 0.5 s x (1 - share) saved per clip, 60 s to compile
    assert COMPILE_SECONDS["cpu"] == 60.0
    needed = math.floor(60.0 / (0.5 * (1 - COMPILED_SHARE["float32"]))) + 1
    assert not _rule(needed - 1, bfloat16_kernels=False).compiled and _rule(needed, bfloat16_kernels=False).compiled
    assert not _rule(needed, bfloat16_kernels=False, compile_seconds=200.0).compiled
    asked = []

    def counter(bound):  # a folder of videos: counting stops once the job is known to be long
        asked.append(bound)
        return bound
    assert _rule(counter, bfloat16_kernels=False).compiled and asked == [1, needed]
    assert not _rule(lambda bound: 0, seconds_per_clip=float("nan"), bfloat16_kernels=True).compiled  # not timed


def test_precision_and_compile_override_their_half_of_the_rule():
    def untimed():
        raise AssertionError("both halves given: nothing to measure")
    given = choose_inference_path(CPU, clips=10_000, seconds_per_clip=untimed, precision="float32", compile=False)
    assert given.record() == {"precision": "float32", "optimized": True, "compiled": False}
    assert _rule(10_000, compile=False, bfloat16_kernels=True).record() == {
        "precision": "float32", "optimized": True, "compiled": False}
    assert _rule(3, compile=True, bfloat16_kernels=True).record() == {
        "precision": "bfloat16", "optimized": True, "compiled": True}
    assert _rule(10_000, precision="float32", bfloat16_kernels=True).record() == {
        "precision": "float32", "optimized": True, "compiled": True}
    assert _rule(3, precision="bfloat16", bfloat16_kernels=False).record() == {
        "precision": "bfloat16", "optimized": True, "compiled": False}
    with pytest.raises(ValueError, match="precision 'half': choose from auto, float32, bfloat16"):
        _rule(3, precision="half")


def test_choose_path_times_the_model_here_and_predictor_records_the_path(tiny, tmp_path):
    loaded = LoadedModel(tiny, "tiny", {"kind": "random"}, random=True)
    path = choose_path(loaded, clips=2, clip_len=4, crop_size=32, bfloat16_kernels=False)
    assert path.record() == {"precision": "float32", "optimized": True, "compiled": False}
    assert "2 clips, compiling pays from ~" in path.reason
    with pytest.raises(i3zoo.UsageError, match="precision 'fp16'"):
        choose_path(loaded, clips=2, clip_len=4, crop_size=32, precision="fp16")
    video = write_video(tmp_path / "v.mp4", 10, 32, 40, fps=25)
    windows = count_windows([video, tmp_path / "missing.mp4", video], clip_len=4, step=4)
    assert windows(1) == 2 and windows(100) == 4  # stops at the first video that reaches the bound
    with_cfg = LoadedModel(i3zoo.create_model("i3resnet18", num_classes=5).eval(), "i3resnet18", {}, random=True)
    predictor = Predictor(with_cfg, clip_len=4, crop_size=32, num_clips=2, top_k=2, optimize=True)
    predictions = predictor.predict([video])
    assert predictions.inference == {"precision": "float32", "optimized": True, "compiled": False}
    assert len(predictions.results[0]["top"]) == 2


def test_compiled_share_is_on_the_safe_side_of_what_was_measured():
    """The rule's COMPILED_SHARE is at or above the share measured beside PyTorchVideo on the AMX Xeon (the
    optimized copy compiled with freezing, over i3zoo's plain float32 model, every design and batch): a job the rule
    compiles repays its compile."""
    data = json.loads((REPO_ROOT / "benchmarks" / "results" / "cpu-intel-r-xeon-r-processor" / "results.json"
                       ).read_text())
    shares = {"float32": [], "bfloat16": []}
    for pair in data["peer"].values():
        for batch in pair["forward"].values():
            plain = batch["i3zoo plain fp32"]["ms_per_clip"]
            for precision, name in (("float32", "fp32"), ("bfloat16", "bf16")):
                shares[precision].append(batch[f"i3zoo optimized {name}, compiled, frozen"]["ms_per_clip"] / plain)
    assert all(len(found) == 4 for found in shares.values())  # two designs, two batches
    for precision, found in shares.items():
        assert max(found) <= COMPILED_SHARE[precision], (precision, found)


def test_the_readmes_example_of_the_rule_is_what_it_prints():
    """README: I3ResNet50 at 16x224x224 on the AMX machine (its benchmark's plain float32 time at batch 1), a job
    of 4800 clips counted as ``extract`` counts them (stopping at the bound), on a machine with bfloat16 kernels."""
    data = json.loads((REPO_ROOT / "benchmarks" / "results" / "cpu-x86_64-amx-2026-11-25" / "results.json"
                       ).read_text())
    seconds = data["models"]["i3resnet50"]["forward"]["1"]["plain fp32"]["ms_per_clip"] / 1000
    path = _rule(lambda bound: min(bound, 4800), seconds_per_clip=seconds, bfloat16_kernels=True)
    readme = " ".join((REPO_ROOT / "README.md").read_text().split())
    assert f"(about {seconds:.2f} s a clip, plain float32, in its benchmark block below)" in readme
    assert f"`inference: a compiled optimized copy in bfloat16 ({path.reason})`" in readme


def test_readme_compile_cost_block_is_the_measurement_and_the_rule_budgets_above_it():
    from readme_blocks import check_committed_blocks

    from benchmarks.compile_cost import RESULTS, render_markdown

    for run in check_committed_blocks("compile-cost", RESULTS, "compile_cost.json", "compile_cost.md",
                                      render_markdown):
        data = json.loads((run / "compile_cost.json").read_text())
        assert max(r["empty cache"] for r in data["seconds"].values()) < COMPILE_SECONDS["cpu"]
        assert all(r["warm cache"] < r["empty cache"] for r in data["seconds"].values())


def test_the_short_jobs_copy_is_faster_than_the_plain_model_in_every_benchmark_row():
    """README: a short job runs the optimized copy in float32, eagerly, because it was faster than the plain model
    in every committed benchmark row (every machine, model and batch)."""
    ratios = [rows["optimized fp32"]["ratio_to_plain"]
              for results in sorted((REPO_ROOT / "benchmarks" / "results").glob("*/results.json"))
              for model in json.loads(results.read_text())["models"].values()
              for rows in model["forward"].values() if "optimized fp32" in rows]
    assert len(ratios) >= 20 and max(ratios) < 1
    readme = " ".join((REPO_ROOT / "README.md").read_text().split())
    assert "faster than the plain model in every benchmark row below, the \"optimized fp32\" rows" in readme
