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
import numpy as np
import pytest
import torch
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


@pytest.fixture(scope="module")
def loaded():
    return load_model("i3resnet18", random_weights=True)


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
    assert [item["kind"] for item in VideoWindows([videos["latin1"]], clip_len=2)] == ["window"] * 3 + ["done"]
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
        import resource, i3zoo.video
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
        import json
        from i3zoo.video import VideoError, VideoReader, evenly_spaced_clips, sliding_windows, transforms_for
        transform = transforms_for("i3resnet18")  # predict's: the short side to 256, the centre 224
        errors = {{}}
        for path in ({str(wide)!r}, {str(huge)!r}, {str(good)!r}):
            try:  # what predict does with each video
                reader = VideoReader(path)
                transform(reader.get_frames(evenly_spaced_clips(reader.num_frames, 2).indices[0].tolist()))
                errors[path.rsplit("/", 1)[1]] = None
            except VideoError as e:
                errors[path.rsplit("/", 1)[1]] = e.reason
        # what extract --fps 25 --clip-len 2 plans for the video with a gap
        windows = sliding_windows(3, 2, frame_times=VideoReader({str(gap)!r}).frame_times, fps=25)
        print(json.dumps(dict(errors=errors, windows=len(windows))))
    """, headroom_mb=600)
    assert result.returncode == 0, result.stderr[-2000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    errors = outcome["errors"]
    assert "aspect ratio of 2000, beyond the limit of 8" in errors["wide.mp4"]
    assert "16000x16000 = 256,000,000 pixels are beyond the limit of 40,000,000" in errors["huge.png"]
    assert errors["good.mp4"] is None
    # frame 0 is held 1 s (25 instants), frame 1 MAX_HOLD_SECONDS = 10 s (250), the last one the median gap, 1 s
    # (25): 300 instants, 150 windows of 2
    assert outcome["windows"] == 150


def test_the_limits_are_raised_by_a_flag(tmp_path, run_cli, monkeypatch):
    wide = write_video(tmp_path / "wide.mp4", 2, 16, 160, codec="mpeg4")
    with pytest.raises(VideoError, match="aspect ratio of 10, beyond the limit of 8"):
        VideoReader(wide)
    result = run_cli("predict", str(wide), *FAST, "--num-clips", "1", "--max-aspect-ratio", "10")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "I3ZOO_MAX_ASPECT_RATIO" not in os.environ  # the flags do not outlive the command
    monkeypatch.setenv("I3ZOO_MAX_ASPECT_RATIO", "10")
    monkeypatch.setenv("I3ZOO_MAX_FRAME_PIXELS", "100")  # what --max-frame-pixels 100 sets
    with pytest.raises(VideoError, match="160x16 = 2,560 pixels are beyond the limit of 100"):
        VideoReader(wide)


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
    ("predict", "--frame-interval", "x", "argument --frame-interval: must be a whole number >= 1; got 'x'"),
    ("extract", "--fps", "nan", "argument --fps: must be a finite number > 0; got 'nan'"),
    ("extract", "--fps", "inf", "argument --fps: must be a finite number > 0; got 'inf'"),
    ("extract", "--fps", "5000", "fps must be a positive number, at most 1000; got 5000"),
    ("extract", "--max-aspect-ratio", "0.5", "--max-aspect-ratio must be a number >= 1; got 0.5"),
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


def test_the_python_api_refuses_a_zero_clip_or_crop(loaded):
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


# --- 3. publishing sends only what was saved -----------------------------------------------------------------

def test_an_upload_of_a_saved_folder_sends_exactly_the_saved_files(tmp_path, monkeypatch):
    """What ``i3zoo push local-dir:DIR`` sends (``upload_saved``): the three files ``save_pretrained`` writes, never
    a ``.env``, a symlink's target, a subfolder or another file; a saved file that is a symlink stops the upload."""
    from hub_standin import HubStandIn
    from huggingface_hub import constants

    from i3zoo.weights.hub import SAVED_FILES, saved_files, upload_saved

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    folder = tmp_path / "best"
    folder.mkdir()
    for name in SAVED_FILES:
        (folder / name).write_bytes(name.encode())  # upload_saved sends bytes; loading is checked before it
    (folder / ".env").write_text("HF_TOKEN=hf_secret\n")
    (tmp_path / "private.txt").write_text("outside the folder")
    (folder / "notes.md").symlink_to(tmp_path / "private.txt")
    (folder / "logs").mkdir()
    (folder / "metrics.json").write_text("{}")
    assert saved_files(folder)[1] == [(".env", "a dotfile"), ("logs", "a folder"),
                                      ("metrics.json", "not a file save_pretrained writes"), ("notes.md", "a symlink")]
    with HubStandIn() as hub:
        upload_saved(folder, "i3zoo-test/best", token="hf_test", endpoint=hub.endpoint)
        assert hub.files("i3zoo-test/best") == {name: name.encode() for name in SAVED_FILES}
        (folder / "README.md").rename(tmp_path / "card.md")
        (folder / "README.md").symlink_to(tmp_path / "card.md")
        with pytest.raises(CheckpointError, match="README.md is a symlink; an upload sends only regular files"):
            upload_saved(folder, "i3zoo-test/linked", token="hf_test", endpoint=hub.endpoint)
        assert "i3zoo-test/linked" not in hub.repos()


# --- 4. untrusted text stays text; 7. honest cards ------------------------------------------------------------

HOSTILE_LABELS = ["\x1b]0;pwned\x07\x1b[2J", "<script>alert(1)</script> [click](http://evil.example) **x**"]


def test_label_names_from_a_model_s_files_are_printed_escaped_and_inert_in_its_card(tmp_path, run_cli, videos):
    import i3zoo

    torch.manual_seed(0)
    folder = i3zoo.save_pretrained(
        i3zoo.create_model("i3resnet18", num_classes=2), tmp_path / "model", measure=False, label_names=HOSTILE_LABELS,
        training=dict(start="`i3resnet18`", train="2 videos", epochs=1, validation="none"))
    card = (folder / "README.md").read_text()
    assert "\x1b" not in card and "<script>" not in card and "](http" not in card
    assert "&lt;script&gt;alert\\(1\\)&lt;/script&gt; \\[click\\]\\(http://evil\\.example\\) \\*\\*x\\*\\*" in card
    args = (str(videos["good"]), "--model", f"local-dir:{folder}", "--clip-len", "2", "--crop-size", "32",
            "--num-clips", "1", "--top-k", "2")
    table = run_cli("predict", *args)
    assert table.returncode == 0, table.stderr
    assert "\x1b" not in table.stdout + table.stderr and "\\x1b]0;pwned\\x07\\x1b[2J" in table.stdout


def test_errors_quoting_a_file_s_text_are_printed_escaped(tmp_path, run_cli, videos):
    listed = tmp_path / "list\x1b]52;c;cHduZWQ=\x07.txt"  # OSC 52 writes the terminal's clipboard
    result = run_cli("train", "--train", str(listed), "--output", str(tmp_path / "run"), *FAST)
    assert result.returncode == 2 and "\x1b" not in result.stderr
    assert "list\\x1b]52;c;cHduZWQ=\\x07.txt" in result.stderr


def test_a_model_trained_from_random_weights_says_so_and_a_misfit_checkpoint_is_one_line(tmp_path):
    from motion_videos import write_motion_dataset

    from i3zoo.train import CHECKPOINT_NAME, TrainConfig, fit

    write_motion_dataset(tmp_path / "data", 1, num_frames=4, size=32)
    config = TrainConfig(train=str(tmp_path / "data"), output=str(tmp_path / "run"), model="i3resnet18",
                         random_weights=True, clip_len=2, crop_size=32, batch_size=2, workers=0, progress=False)
    fit(config)
    card = (tmp_path / "run" / "last" / "README.md").read_text()
    assert "seeded random 2D weights (--random-weights), NOT pretrained" in card and "its weights" not in card
    saved = json.loads((tmp_path / "run" / "last" / "config.json").read_text())
    assert saved["i3zoo"]["training"]["random_weights"] is True

    path = tmp_path / "run" / CHECKPOINT_NAME
    checkpoint = torch.load(path, weights_only=True)
    del checkpoint["model"]["layer1.0.conv1.weight"]
    checkpoint["model"]["fc.weight"] = torch.zeros(3, 512)
    torch.save(checkpoint, path)
    config.resume = True
    with pytest.raises(ValueError, match=r"the model state in .*checkpoint.pt does not fit the model \(2 problem\(s\): "
                                         r"missing layer1.0.conv1.weight; fc.weight: \(3, 512\) where the model has "
                                         r"\(2, 512\)\)"):
        fit(config)


# --- 6. one settings per output folder -------------------------------------------------------------------------

def test_a_job_with_other_settings_is_refused_before_it_writes(tmp_path, videos, loaded):
    from i3zoo.engines import Extractor

    out = tmp_path / "features"
    first = Extractor(loaded, clip_len=2, crop_size=32, workers=0).extract([videos["good"]], out, progress=False)
    assert first.written == 1
    other = Extractor(loaded, clip_len=3, crop_size=32, workers=0)
    with pytest.raises(UsageError, match=r"holds features made with other settings \(clip_len: 2 there, 3 here; "
                                         r"step: 2 there, 3 here\)"):
        other.extract([videos["latin1"]], out, progress=False)
    assert [p.name for p in out.iterdir()] == ["good.mp4.safetensors"]
    assert (tmp_path / ".features.i3zoo-settings.json").is_file()  # beside the folder


def test_of_jobs_starting_at_once_exactly_one_claims_the_folder(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from i3zoo.engines.folder_settings import claim_folder

    def claim(k):
        try:
            claim_folder(tmp_path / "out", {"clip_len": k})
            return k
        except UsageError:
            return None

    with ThreadPoolExecutor(8) as pool:
        winners = [k for k in pool.map(claim, range(16)) if k is not None]
    assert len(winners) == 1
    assert json.loads((tmp_path / ".out.i3zoo-settings.json").read_text()) == {"clip_len": winners[0]}
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.i3zoo-settings.json", "out"]  # no temporary left


# --- 8. fidelity to the published protocols ---------------------------------------------------------------------

def mmaction2_sample_frames_test_mode(total_frames, clip_len, frame_interval, num_clips):
    """MMAction2's ``SampleFrames(test_mode=True, out_of_bound_opt="repeat_last")`` today, transcribed line for line
    from ``mmaction/datasets/transforms/loading.py`` (open-mmlab/mmaction2 at 08de558: ``_get_test_clips`` and
    ``transform``; twice_sample and temporal_jitter off, start_index 0)."""
    ori_clip_len = (clip_len - 1) * frame_interval + 1
    max_offset = max(total_frames - ori_clip_len, 0)
    if num_clips > 1:
        num_segments = num_clips - 1
        offset_between = max_offset / float(num_segments)
        clip_offsets = np.arange(num_clips) * offset_between
        clip_offsets = np.round(clip_offsets).astype(np.int32)
    else:
        clip_offsets = np.array([max_offset // 2])
    frame_inds = clip_offsets[:, None] + np.arange(clip_len)[None, :] * frame_interval
    frame_inds = np.concatenate(frame_inds).reshape((-1, clip_len))
    safe_inds = frame_inds < total_frames
    unsafe_inds = 1 - safe_inds
    last_ind = np.max(safe_inds * frame_inds, axis=1)
    return (safe_inds * frame_inds + (unsafe_inds.T * last_ind).T).tolist()


def test_the_default_sampler_is_mmaction2_1x_index_for_index():
    from i3zoo.video import evenly_spaced_clips

    for num_frames in (1, 2, 5, 15, 16, 17, 31, 64, 132, 301):
        for clip_len, interval, num_clips in ((16, 1, 3), (8, 8, 10), (32, 2, 1), (4, 1, 2), (1, 1, 5), (8, 4, 7)):
            expected = mmaction2_sample_frames_test_mode(num_frames, clip_len, interval, num_clips)
            assert evenly_spaced_clips(num_frames, clip_len, interval, num_clips).tolist() == expected
    # predict's defaults on 132 frames: MMAction2 0.x started at 19, 58, 97
    assert [c[0] for c in evenly_spaced_clips(132, 16, 1, 3).tolist()] == [0, 58, 116]
    assert [c[0] for c in evenly_spaced_clips(132, 16, 1, 3, sampler="mmaction2_0x").tolist()] == [19, 58, 97]


def _pytorchvideo_functional():
    """``pytorchvideo/transforms/functional.py`` loaded on its own (the package's ``transforms`` no longer import
    on today's torchvision)."""
    import importlib.util

    import pytorchvideo

    path = Path(pytorchvideo.__file__).parent / "transforms" / "functional.py"
    spec = importlib.util.spec_from_file_location("pytorchvideo_functional", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ptv_k400_frames_are_prepared_as_pytorchvideo_evaluated_them():
    from i3zoo.registry import meta_model
    from i3zoo.video import transforms_for

    functional = _pytorchvideo_functional()
    cfg = dict(meta_model("i3resnet50_i3d.ptv_k400").pretrained_cfg)
    assert (cfg["clip_sampler"], cfg["test_clips"], cfg["test_crops"]) == ("spread", 10, 3)
    frames = torch.randint(0, 256, (2, 3, 360, 480), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    # PyTorchVideo's Kinetics evaluation: Div255, Normalize, ShortSideScale(256), CenterCrop(224)
    video = frames.permute(1, 0, 2, 3).float() / 255.0
    mean, std = torch.tensor(cfg["mean"]).view(3, 1, 1, 1), torch.tensor(cfg["std"]).view(3, 1, 1, 1)
    scaled = functional.short_side_scale((video - mean) / std, 256)
    top, left = round((scaled.shape[-2] - 224) / 2), round((scaled.shape[-1] - 224) / 2)
    expected = scaled[..., top:top + 224, left:left + 224]
    ours = transforms_for(cfg)(frames)
    assert ours.shape == expected.shape == (3, 2, 224, 224)
    assert (ours - expected).abs().max() < 1e-5
    antialiased = transforms_for(dict(cfg, resize_float=False, resize_antialias=True))(frames)
    assert (antialiased - expected).abs().max() > 0.1  # what the ptv_k400 weights were fed before


def test_evaluate_scores_each_video_by_the_mean_softmax_of_its_views(tmp_path, run_cli, videos, loaded):
    predictor = Predictor(loaded, clip_len=2, crop_size=32, num_clips=2)
    good, latin1 = (predictor.predict_one(videos[name])["top"] for name in ("good", "latin1"))
    listed = tmp_path / "val.csv"
    listed.write_text(f"{videos['good']},{good[0]['class']}\n{videos['latin1']},{good[1]['class']}\n"
                      f"{tmp_path / 'missing.mp4'},0\n")
    result = run_cli("evaluate", str(listed), *FAST, "--num-clips", "2", "--crops", "1", "--json")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["protocol"] == dict(clip_len=2, frame_interval=1, num_clips=2, num_crops=1, sampler="spread",
                                      crop_size=32)
    assert (report["videos"], report["evaluated"], len(report["failures"])) == (3, 2, 1)
    assert report["top1"] == 50.0 + 50.0 * (latin1[0]["class"] == good[1]["class"])
    assert report["top5"] == 50.0 + 50.0 * (good[1]["class"] in [t["class"] for t in latin1])


def test_frames_come_as_stored_and_the_reader_says_how_players_rotate_them(tmp_path, videos):
    path = tmp_path / "portrait.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=8)
        stream.width, stream.height, stream.pix_fmt = 40, 32, "yuv420p"
        stream.set_display_rotation(90)  # a phone held upright
        for i in range(3):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame_pixels(i, 32, 40), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    reader = VideoReader(path, backend="pyav")
    assert reader.rotation == 90 and reader.size == (32, 40) and reader.get_frames([0]).shape == (1, 3, 32, 40)
    assert VideoReader(videos["good"]).rotation == 0
