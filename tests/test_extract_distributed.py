"""`i3zoo extract` on many processes and beside other jobs: shares split by size, two gloo processes equal to one,
rank 0 reporting every rank's failures, claims that make concurrent jobs compute each video once and let a dead
job's videos be taken over, cheap planning of a long list, and GPU decoding refused where it cannot run.

The smallest ResNet (i3resnet18) on 2-frame clips of 32 pixels, one window a model call, so that every layout
computes each window alike."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from video_samples import write_video

from i3zoo.cli import main
from i3zoo.engines import load_model
from i3zoo.engines.extraction import Extractor, collect_videos, split_by_size
from i3zoo.files import claim

TINY = ("--model", "i3resnet18", "--random-weights", "--clip-len", "2", "--crop-size", "32", "--batch-size", "1")
NAMES = ["a.mp4", "b.mp4", "c.mp4", "d.mp4", "e.mp4"]
BROKEN = "z_broken.mp4"  # last in sorted order: the last process's share


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dist") / "videos"
    root.mkdir()
    for i, name in enumerate(NAMES):
        write_video(root / name, 4 + 2 * i, 32, 40)
    (root / BROKEN).write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 50)
    return root


@pytest.fixture(scope="module")
def reference(videos, tmp_path_factory) -> Path:
    """The outputs of one process (in this interpreter: no fresh imports)."""
    out = tmp_path_factory.mktemp("reference")
    assert main(["extract", str(videos), *TINY, "--out", str(out), "--workers", "0"]) == 1  # the broken video
    return out


def _features(path: Path) -> torch.Tensor:
    with safe_open(str(path), framework="pt") as f:
        return f.get_tensor("features")


def _outputs(out: Path):
    return sorted(p.name for p in out.iterdir() if not p.name.startswith("."))


def test_shares_are_contiguous_disjoint_and_balanced_by_size():
    generator = random.Random(0)
    for world_size in (1, 2, 3, 7):
        for _ in range(50):
            sizes = [generator.choice([0, 1, 10, 1000, 10**6]) * generator.randint(1, 9)
                     for _ in range(generator.randint(0, 40))]
            shares = split_by_size(sizes, world_size)
            assert len(shares) == world_size
            assert [i for share in shares for i in share] == list(range(len(sizes)))  # in order, once each
            weights = [max(s, 1) for s in sizes]
            for share in shares:  # no process gets more than its part plus one video's worth
                assert sum(weights[i] for i in share) <= sum(weights) / world_size + max(weights, default=0)
    # one long video does not leave the other process idle: the short ones go together
    assert split_by_size([100, 1, 1, 1, 1], 2) == [range(0, 1), range(1, 5)]
    assert split_by_size([0, 0, 0, 0], 2) == [range(0, 2), range(2, 4)]  # empty files: by count


def test_two_gloo_processes_beside_another_job_equal_one_process(videos, reference, tmp_path, capfd, monkeypatch):
    """`--nproc 2` (torchrun, gloo on CPU) and an independent one-process job (here, in a thread) on the same
    folder at once: every output complete and computed once, the same features as one process, the broken video
    (in rank 1's share) in rank 0's summary and the exit status."""
    out = tmp_path / "out"
    sizes = [(videos / name).stat().st_size for name in sorted([*NAMES, BROKEN])]
    assert len(split_by_size(sizes, 2)[1]) and sorted([*NAMES, BROKEN])[split_by_size(sizes, 2)[1][-1]] == BROKEN
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    statuses = []

    def other_job():  # starts once the torchrun job is at work, so that both compete for the rest
        deadline = time.time() + 120
        while not list(out.glob("*.safetensors")) and time.time() < deadline:
            time.sleep(0.01)
        statuses.append(main(["extract", str(videos), *TINY, "--out", str(out), "--workers", "0"]))

    other = threading.Thread(target=other_job)
    other.start()
    capfd.readouterr()
    status = main(["extract", str(videos), *TINY, "--out", str(out), "--workers", "1", "--nproc", "2"])
    other.join(timeout=300)
    printed = capfd.readouterr().out  # what both jobs printed (the torchrun processes' and this one's)
    assert status != 0 and statuses == [1], printed
    assert f"FAILED {videos / BROKEN}: not a readable video file" in printed  # rank 1's failure, by rank 0
    assert "by 2 processes" in printed
    summaries = [line.split("summary: ")[1] for line in printed.splitlines() if "summary: " in line]
    assert len(summaries) == 2 and sum(int(line.split(" written")[0]) for line in summaries) == len(NAMES), printed
    assert _outputs(out) == _outputs(reference) == [f"{name}.safetensors" for name in NAMES]
    assert not list(out.glob(".*"))  # no claim or temporary file left
    for name in NAMES:
        ours, theirs = _features(out / f"{name}.safetensors"), _features(reference / f"{name}.safetensors")
        assert ours.shape == theirs.shape and (ours - theirs).abs().max() <= 1e-6 * theirs.abs().max()


def test_a_video_another_job_holds_is_done_last_and_taken_over_when_that_job_dies(run_cli, videos, reference,
                                                                                   tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    # another job finished c.mp4 while we planned (its output is there once we may claim it): never rewritten
    finished = claim(out / "c.mp4.safetensors")
    # ... and holds b.mp4, then dies without writing it: this job computes it once the claim is free
    abandoned = claim(out / "b.mp4.safetensors")

    def other_job():  # lets go once this job has done what it could (a.mp4) and waits
        deadline = time.time() + 120
        while not (out / "a.mp4.safetensors").exists() and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
        (out / "c.mp4.safetensors").write_bytes((reference / "c.mp4.safetensors").read_bytes())
        finished.release()
        abandoned.release()

    threading.Thread(target=other_job).start()
    result = run_cli("extract", str(videos / "a.mp4"), str(videos / "b.mp4"), str(videos / "c.mp4"), *TINY,
                     "--out", str(out), "--workers", "0")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "summary: 2 written, 1 skipped (complete), 0 failed" in result.stdout
    lines = [line for line in result.stdout.splitlines() if line.startswith("[random weights] [")]
    assert "a.mp4" in lines[0] and "complete (written by another job)" in lines[-2] and "b.mp4" in lines[-1]
    assert (out / "c.mp4.safetensors").read_bytes() == (reference / "c.mp4.safetensors").read_bytes()
    assert torch.equal(_features(out / "b.mp4.safetensors"), _features(reference / "b.mp4.safetensors"))
    assert not list(out.glob(".*"))


def test_planning_a_long_list_opens_no_video_and_stays_cheap(tmp_path):
    """100,000 listed paths (2,000 real, empty files): planning a share stats each path once, opens no video, claims
    nothing and writes nothing."""
    folder = tmp_path / "v"
    folder.mkdir()
    for i in range(2000):
        (folder / f"{i:06d}.mp4").touch()
    listing = tmp_path / "list.txt"
    listing.write_text("".join(f"v/{i:06d}.mp4\n" for i in range(100_000)))
    extractor = Extractor(load_model("i3resnet18", random_weights=True), clip_len=2, crop_size=32, world_size=4,
                          rank=1, workers=0)
    started = time.perf_counter()
    inputs = collect_videos([], listing)
    plan = extractor.plan(inputs, tmp_path / "out")
    seconds = time.perf_counter() - started
    assert len(inputs.videos) == 2000 and len(inputs.missing) == 98_000
    assert len(plan.todo) == 500 and plan.failures == [] and plan.rank == 1  # missing inputs: rank 0 reports them
    assert not (tmp_path / "out").exists()
    assert seconds < 15, seconds


def test_gpu_decoding_without_a_gpu_is_a_one_line_error(run_cli, videos, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = run_cli("extract", str(videos / "a.mp4"), *TINY, "--out", str(tmp_path / "o"), "--decode-device", "cuda")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "--decode-device cuda" in result.stderr and "no CUDA GPU" in result.stderr
    assert not (tmp_path / "o").exists()


def test_a_job_restarted_with_another_number_of_processes_completes_exactly_the_rest(videos, reference, tmp_path):
    """The engine in a user's own launcher (rank and world size given, no process group): rank 0 of 2 ran, then
    the job was restarted on 3 processes. The rest is computed once, nothing complete is rewritten."""
    loaded = load_model("i3resnet18", random_weights=True)
    # optimize=True: the path the command (the reference) takes for a job this short
    options = dict(clip_len=2, crop_size=32, batch_size=1, workers=0, optimize=True)
    out = tmp_path / "out"
    first = Extractor(loaded, rank=0, world_size=2, **options).extract([videos], out, progress=False)
    assert first.written == len(split_by_size([(videos / n).stat().st_size for n in NAMES + [BROKEN]], 2)[0])
    complete = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.iterdir()}
    again = [Extractor(loaded, rank=rank, world_size=3, **options).extract([videos], out, progress=False)
             for rank in range(3)]
    assert sum(s.written for s in again) == len(NAMES) - first.written
    assert sum(s.skipped for s in again) == first.written
    assert [f[0] for s in again for f in s.failures] == [str(videos / BROKEN)]  # reported once, by its process
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in complete} == complete
    assert _outputs(out) == _outputs(reference)
    for name in NAMES:
        assert torch.equal(_features(out / f"{name}.safetensors"), _features(reference / f"{name}.safetensors"))
