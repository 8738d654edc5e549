"""Reliability III: hostile videos, folders and labels. One section per promise: a bad video is that video's
problem only; memory is bounded whatever a file says; publishing sends only what was saved; untrusted text stays
text; arguments mean what they say; one settings per output folder; honest cards.

Every video here is written by the test with PyAV; cases whose failure is running out of memory run in a
subprocess under an address-space limit (``resource.setrlimit``), so that the old behaviour fails quickly.
"""

from __future__ import annotations

import json
from pathlib import Path

import av
import pytest
from torch.utils.data import DataLoader
from video_samples import frame_pixels, write_video

from i3zoo.train.data import ReportUnreadable, Unreadable, collate_readable
from i3zoo.video import Decoder, VideoError, VideoFolder, VideoReader, VideoWindows, register_decoder
from i3zoo.video.decoders import unregister_decoder

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
