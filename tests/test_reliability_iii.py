"""Reliability III: hostile videos, folders and labels. One section per promise: a bad video is that video's
problem only; memory is bounded whatever a file says; publishing sends only what was saved; untrusted text stays
text; arguments mean what they say; one settings per output folder; honest cards.

Every video here is written by the test with PyAV; cases whose failure is running out of memory run in a
subprocess under an address-space limit (``resource.setrlimit``), so that the old behaviour fails quickly.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import av
import pytest
from torch.utils.data import DataLoader
from video_samples import frame_pixels, write_video

from i3zoo.engines import Predictor, load_model
from i3zoo.errors import UsageError
from i3zoo.train.data import ReportUnreadable, Unreadable, check_datasets, collate_readable
from i3zoo.video import Decoder, VideoError, VideoFolder, VideoList, VideoReader, VideoWindows, register_decoder
from i3zoo.video.decoders import unregister_decoder
from i3zoo.weights.checkpoints import CheckpointError
from i3zoo.weights.config import validate_config

FAST = ("--model", "i3resnet18", "--clip-len", "2", "--crop-size", "32", "--random-weights")
LATIN1_TITLE = "Caf\u00e9 \u00e0 l'\u00e9t\u00e9"  # é and à are one byte each in Latin-1, and not UTF-8


def write_latin1_tagged(path: Path, num_frames: int = 6) -> Path:
    """A video whose container and stream titles are Latin-1 bytes (as older tools wrote them)."""
    with av.open(str(path), "w", metadata_encoding="latin-1") as container:
        container.metadata["title"] = LATIN1_TITLE
        stream = container.add_stream("mpeg4", rate=8)
        stream.width, stream.height, stream.pix_fmt = 40, 32, "yuv420p"
        stream.metadata["title"] = LATIN1_TITLE
        for i in range(num_frames):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame_pixels(i, 32, 40), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    return dict(good=write_video(folder / "good.mp4", 6, 32, 40), latin1=write_latin1_tagged(folder / "latin1.mp4"))


class ExplodingDecoder(Decoder):
    """A decoder plug-in whose library fails mid-read with an exception of its own."""

    name = "exploding"

    def get_frames(self, wanted):
        raise RuntimeError("the codec library gave up")


@pytest.fixture
def exploding():
    register_decoder(ExplodingDecoder)
    yield ExplodingDecoder.name
    unregister_decoder(ExplodingDecoder.name)


# --- 1. a bad video is that video's problem only ------------------------------------------------------------

def test_a_latin1_tag_does_not_stop_the_frames(videos):
    reader = VideoReader(videos["latin1"], backend="pyav")
    assert reader.num_frames == 6
    frames = reader.get_frames([0, 5])
    levels = frames.float().mean(dim=(1, 2, 3))
    assert frames.shape == (2, 3, 32, 40) and levels[1] > levels[0]  # frame 5 is brighter than frame 0


def test_a_latin1_tag_is_read_by_predict_extract_and_training_workers(videos, run_cli, tmp_path):
    result = run_cli("predict", str(videos["latin1"]), str(videos["good"]), *FAST, "--num-clips", "1", "--json")
    assert result.returncode == 0, result.stderr
    assert [r["video"] for r in json.loads(result.stdout)["results"] if "top" in r] == [
        str(videos["latin1"]), str(videos["good"])]
    result = run_cli("extract", str(videos["latin1"]), *FAST, "--out", str(tmp_path / "features"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "features" / "latin1.mp4.safetensors").is_file()
    classes = tmp_path / "classes"
    for name in ("a", "b"):
        (classes / name).mkdir(parents=True)
        (classes / name / "v.mp4").write_bytes(videos["latin1" if name == "a" else "good"].read_bytes())
    loader = DataLoader(ReportUnreadable(VideoFolder(classes, clip_len=2)), batch_size=2, num_workers=1,
                        collate_fn=collate_readable)
    (clips, labels, unreadable), = list(loader)
    assert clips.shape == (2, 2, 3, 32, 40) and labels.tolist() == [0, 1] and unreadable == []


def test_any_exception_of_any_decoder_is_the_file_s_failure(videos, exploding, tmp_path):
    reader = VideoReader(videos["good"], backend=exploding)
    with pytest.raises(VideoError, match=r"good.mp4: decoding failed \(exploding: RuntimeError: the codec library"):
        reader.get_frames([0])
    items = list(VideoWindows([videos["good"]], clip_len=2, backend=exploding))
    assert [item["kind"] for item in items] == ["error"] and "RuntimeError" in items[0]["reason"]
    classes = tmp_path / "classes"
    (classes / "a").mkdir(parents=True)
    (classes / "a" / "v.mp4").write_bytes(videos["good"].read_bytes())
    loader = DataLoader(ReportUnreadable(VideoFolder(classes, clip_len=2, backend=exploding)), batch_size=1,
                        num_workers=1, collate_fn=collate_readable)  # the error happens in a worker
    (clips, _, unreadable), = list(loader)
    assert clips is None and isinstance(unreadable[0], Unreadable) and "the codec library" in unreadable[0].reason


def test_predict_reports_a_decoder_s_exception_as_the_file_s_failure(videos, exploding, run_cli):
    result = run_cli("predict", str(videos["good"]), *FAST, "--backend", exploding, "--json")
    assert result.returncode == 1, result.stderr
    (entry,) = json.loads(result.stdout)["results"]
    assert "RuntimeError: the codec library gave up" in entry["error"]


# --- 2. memory is bounded whatever a file says ------------------------------------------------------------

def write_png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG that declares ``width`` x ``height`` RGB pixels and holds ten rows of them (a few kilobytes)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = zlib.compress(bytes((1 + 3 * width) * 10))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b""))
    return path


def run_limited(code: str, *, headroom_mb: int, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter whose address space may grow ``headroom_mb`` beyond what torch and i3zoo
    take once imported: an allocation past it fails at once (MemoryError) instead of swapping the machine."""
    prologue = f"""
        import resource, i3zoo, i3zoo.cli, i3zoo.video
        size = int(open("/proc/self/status").read().split("VmSize:")[1].split()[0]) * 1024
        resource.setrlimit(resource.RLIMIT_AS, (size + {headroom_mb} * 2**20, resource.RLIM_INFINITY))
    """
    env = dict(os.environ, MALLOC_ARENA_MAX="2", OMP_NUM_THREADS="1")  # no 64 MB malloc arena per thread
    return subprocess.run([sys.executable, "-c", textwrap.dedent(prologue) + textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=timeout, env=env)


def test_declared_sizes_and_timestamps_cannot_take_the_memory(tmp_path):
    """A 4000x2 video (2,000,000 x 256 pixels once its short side is resized to 256), a PNG that declares
    16000x16000 (768 MB of RGB), and three frames spanning 10^7 s at --fps 25 (250 million instants): each is
    that file's reason under a 600 MB limit, and the good video beside them is read."""
    wide = write_video(tmp_path / "wide.mp4", 2, 2, 4000, codec="mpeg4")
    huge = write_png_header_only(tmp_path / "huge.png", 16000, 16000)
    gap = write_video(tmp_path / "gap.mkv", 3, 32, 40, times_ms=[0, 1000, 10**10])
    good = write_video(tmp_path / "good.mp4", 4, 32, 40)
    result = run_limited(f"""
        import contextlib, io, json
        from i3zoo.cli import main
        with contextlib.redirect_stdout(io.StringIO()) as printed:
            predict = main(["predict", {str(wide)!r}, {str(huge)!r}, {str(good)!r}, "--model", "i3resnet18",
                            "--random-weights", "--clip-len", "2", "--num-clips", "1", "--json"])
            extract = main(["extract", {str(gap)!r}, "--model", "i3resnet18", "--random-weights", "--clip-len",
                            "2", "--crop-size", "32", "--fps", "25", "--out", {str(tmp_path / "features")!r}])
        report = json.JSONDecoder().raw_decode(printed.getvalue())[0]  # predict's JSON, then extract's lines
        print(json.dumps(dict(codes=[predict, extract], report=report)))
    """, headroom_mb=600)
    assert result.returncode == 0, result.stderr[-2000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["codes"] == [1, 0], result.stderr[-2000:]
    report = outcome["report"]
    errors = {Path(r["video"]).name: r.get("error") for r in report["results"]}
    assert "aspect ratio of 2000, beyond the limit of 8" in errors["wide.mp4"]
    assert "16000x16000 = 256,000,000 pixels are beyond the limit of 40,000,000" in errors["huge.png"]
    assert errors["good.mp4"] is None
    from safetensors.torch import load_file

    features = load_file(str(tmp_path / "features" / "gap.mkv.safetensors"))
    # frame 0 is held 1 s (25 instants), frame 1 MAX_HOLD_SECONDS = 10 s (250), the last one the median gap, 1 s
    # (25): 300 instants, 150 windows of 2
    assert features["features"].shape[0] == 150


def test_the_limits_are_raised_by_a_flag(tmp_path, run_cli):
    wide = write_video(tmp_path / "wide.mp4", 2, 16, 160, codec="mpeg4")
    result = run_cli("predict", str(wide), *FAST, "--num-clips", "1")
    assert result.returncode == 1 and "aspect ratio of 10, beyond the limit of 8" in result.stdout
    result = run_cli("predict", str(wide), *FAST, "--num-clips", "1", "--max-aspect-ratio", "10")
    assert result.returncode == 0, result.stdout + result.stderr
    result = run_cli("predict", str(wide), *FAST, "--max-frame-pixels", "100", "--max-aspect-ratio", "10")
    assert result.returncode == 1 and "160x16 = 2,560 pixels are beyond the limit of 100" in result.stdout
    assert "I3ZOO_MAX_FRAME_PIXELS" not in os.environ  # the flags do not outlive the command


def test_label_indices_and_names_have_a_ceiling(tmp_path, videos):
    listed = tmp_path / "list.txt"
    listed.write_text(f"{videos['good']},100000\n")
    with pytest.raises(ValueError, match=r"list.txt:1: label 100000 is beyond the largest class index allowed, "
                                         r"99,999"):
        VideoList(listed, clip_len=2)
    listed.write_text(f"{videos['good']},{'x' * 300}\n")
    with pytest.raises(ValueError, match=r"list.txt:1: label name 0 \(x+\.\.\.\) has 300 characters; at most 256"):
        VideoList(listed, clip_len=2)
    with pytest.raises(CheckpointError, match="label_names'.* has 300 characters"):
        validate_config({"architecture": "i3resnet18", "label_names": ["x" * 300]}, "folder", ["i3resnet18"])
    with pytest.raises(CheckpointError, match="'num_classes' must be an integer from 0 to 100,000; got 1000000000"):
        validate_config({"architecture": "i3resnet18", "num_classes": 10**9}, "folder", ["i3resnet18"])


# --- 5. arguments mean what they say -------------------------------------------------------------------------

@pytest.mark.parametrize("command, flag, value, message", [
    ("predict", "--clip-len", "0", "argument --clip-len: must be >= 1; got 0"),
    ("predict", "--crop-size", "0", "argument --crop-size: must be >= 1; got 0"),
    ("predict", "--num-clips", "0", "argument --num-clips: must be >= 1; got 0"),
    ("predict", "--top-k", "x", "argument --top-k: must be a whole number >= 1; got 'x'"),
    ("extract", "--fps", "nan", "argument --fps: must be a finite number > 0; got 'nan'"),
    ("extract", "--fps", "inf", "argument --fps: must be a finite number > 0; got 'inf'"),
    ("extract", "--fps", "5000", "fps must be a positive number, at most 1000; got 5000"),
    ("extract", "--step", "0", "argument --step: must be >= 1; got 0"),
    ("train", "--lr", "nan", "lr (--lr) must be a finite number > 0; got nan"),
    ("train", "--grad-clip", "inf", "grad_clip (--grad-clip) must be a finite number >= 0; got inf"),
    ("train", "--warmup-epochs", "nan", "warmup_epochs (--warmup-epochs) must be a finite number >= 0; got nan"),
])
def test_out_of_range_and_non_finite_flags_are_refused_naming_the_flag(run_cli, videos, tmp_path, command, flag,
                                                                       value, message):
    where = {"predict": [str(videos["good"])], "extract": [str(videos["good"]), "--out", str(tmp_path / "o")],
             "train": ["--train", str(tmp_path), "--output", str(tmp_path / "run")]}[command]
    result = run_cli(command, *where, *FAST, flag, value)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists() and not (tmp_path / "run").exists()


def test_the_python_api_refuses_a_zero_clip_or_crop(videos):
    loaded = load_model("i3resnet18", random_weights=True)
    for option in ("clip_len", "crop_size"):
        with pytest.raises(UsageError, match=f"{option} 0 is below i3resnet18's minimum"):
            Predictor(loaded, **{option: 0})


def test_list_file_labels_are_checked_line_by_line_and_a_bom_is_ignored(tmp_path, videos):
    listed = tmp_path / "list.txt"
    listed.write_bytes(f"\ufeff{videos['good']},1\n{videos['latin1']},0\n".encode("utf-8"))  # as Notepad saves
    assert [label for _, label in VideoList(listed, clip_len=2).samples] == [1, 0]
    names = tmp_path / "names.txt"
    names.write_bytes("\ufeffwalking\nrunning\n".encode("utf-8"))
    assert VideoList(listed, clip_len=2, label_names=names).classes == ["walking", "running"]
    for label, message in (("1.5", "list.txt:2: label '1.5' is not a class index; indices are whole numbers"),
                           ("-1", "list.txt:2: label '-1' is not a class index"),
                           ("2e3", "list.txt:2: label '2e3' is not a class index"),
                           ("\u00b2", "list.txt:2: unknown label '\u00b2'"),
                           ("a\x1b[2Jb", r"list.txt:2: unknown label 'a\\x1b\[2Jb'")):
        listed.write_text(f"{videos['good']},0\n{videos['latin1']},{label}\n", encoding="utf-8")
        with pytest.raises(ValueError, match=message):
            VideoList(listed, clip_len=2, label_names=["walking", "running"])


def test_a_one_class_training_set_is_refused(tmp_path, videos):
    listed = tmp_path / "list.txt"
    listed.write_text(f"{videos['good']},0\n{videos['latin1']},0\n")
    train = VideoList(listed, clip_len=2)
    with pytest.raises(ValueError, match="every training video has label 0; a classifier needs videos of at least "
                                         "two classes"):
        check_datasets(train, None, num_classes=1, batch_size=1, world_size=1, backend="pyav")
