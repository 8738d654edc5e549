"""Decoders are plug-ins: a third decoder is one new module (a ``Decoder`` subclass with ``@register_decoder``),
and is then listed, chosen by name (and by ``backend="auto"`` when preferred), used by ``VideoReader`` and offered
by the command line's ``--backend``. The toy decoder is written by the tests as a module; each test removes it
from the registry afterwards, so other tests see the built-in decoders only."""

from __future__ import annotations

import importlib.util
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from video_samples import write_video

from i3zoo.video import (
    BACKENDS,
    Decoder,
    VideoReader,
    backend_choices,
    decoder_names,
    decoder_status,
    register_decoder,
    resolve_backend,
    unregister_decoder,
)

REPO = Path(__file__).resolve().parents[1]

# A whole third decoder: it decodes the whole file with PyAV's plainest loop for every request, and matches the
# frames to indices by timestamp through the stream index it is given.
TOY_DECODER = '''
"""A toy third decoder, for the plug-in tests."""

import av
import torch

from i3zoo.video.decoders import Decoder, register_decoder


@register_decoder
class WholeFileDecoder(Decoder):
    name = "toy"
    preference = -1  # below PyAV: "auto" takes it only where a test raises this
    usable = True
    reads = 0

    @classmethod
    def unavailable(cls):
        return None if cls.usable else "the toy decoder is switched off"

    def get_frames(self, wanted):
        type(self).reads += 1
        position = {pts: i for i, pts in enumerate(self.index.pts)}
        with av.open(str(self.path)) as container:
            decoded = {position.get(frame.pts): frame for frame in container.decode(video=0)}
        return {i: torch.from_numpy(decoded[i].to_ndarray(format="rgb24")).permute(2, 0, 1)
                for i in wanted if i in decoded}
'''


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("decoders") / "clip.mp4", 40, 32, 40, fps=25)


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """The toy decoder's class, registered by importing the module the test writes; unregistered afterwards."""
    assert "toy" not in decoder_names()
    path = tmp_path / "toy_decoder.py"
    path.write_text(TOY_DECODER)
    spec = importlib.util.spec_from_file_location("toy_decoder", path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "toy_decoder", module)  # so that readers holding a toy decoder pickle
    spec.loader.exec_module(module)
    try:
        yield module.WholeFileDecoder
    finally:
        if "toy" in decoder_names():
            unregister_decoder("toy")


def test_a_registered_decoder_is_listed_chosen_by_name_and_used_by_the_reader(toy, video):
    assert backend_choices() == ("auto", "pyav", "torchcodec", "toy")
    assert BACKENDS == ("auto", "pyav", "torchcodec")  # the built-in ones, as before
    assert decoder_status()["toy"] is None and list(decoder_status())[-1] == "toy"  # the least preferred
    assert resolve_backend("toy") == "toy" and resolve_backend("auto") != "toy"

    reader, pyav = VideoReader(video, backend="toy"), VideoReader(video, backend="pyav")
    assert reader.backend == "toy" and toy.reads == 0
    indices = [39, 3, 3, 0, 17]
    assert torch.equal(reader.get_frames(indices), pyav.get_frames(indices)) and toy.reads == 1
    windows = [list(range(start, start + 8)) for start in range(0, 33, 6)]
    ours, theirs = list(reader.iter_clips(windows)), list(pyav.iter_clips(windows))
    assert [n for n, _ in ours] == list(range(len(windows)))
    assert all(torch.equal(a, b) for (_, a), (_, b) in zip(ours, theirs))
    # the default streaming read asks the decoder for batch_frames frames at a time: 38 distinct frames
    assert toy.reads == 1 + 3
    travelled = pickle.loads(pickle.dumps(reader))  # as to a DataLoader worker
    assert travelled.backend == "toy" and torch.equal(travelled.get_frames([5]), pyav.get_frames([5]))


def test_auto_takes_the_most_preferred_usable_decoder_and_says_why_others_were_passed_over(toy, video):
    toy.preference = 100
    assert list(decoder_status())[0] == "toy"
    assert resolve_backend("auto") == "toy" and VideoReader(video).backend == "toy"
    toy.usable = False
    assert decoder_status()["toy"] == "the toy decoder is switched off"
    fallback = resolve_backend("auto")
    assert fallback in ("pyav", "torchcodec")
    with pytest.raises(ValueError, match=f"video backend 'toy' cannot be used: the toy decoder is switched off; "
                                         f"use backend='{fallback}'"):
        VideoReader(video, backend="toy")


def test_the_command_line_offers_a_registered_decoder_and_uses_it(toy, video, run_cli):
    from i3zoo.cli import build_parser

    fast = ("--model", "i3resnet50", "--clip-len", "2", "--crop-size", "32", "--random-weights", "--num-clips", "2")
    result = run_cli("predict", str(video), *fast, "--backend", "toy", "--json")
    assert result.returncode == 0, result.stderr
    assert toy.reads == 1  # predict reads its clips with one get_frames call per video
    unregister_decoder("toy")
    assert backend_choices() == BACKENDS
    result = run_cli("predict", str(video), *fast, "--backend", "toy")
    assert result.returncode == 2
    assert "argument --backend: invalid choice: 'toy'" in result.stderr and "torchcodec" in result.stderr
    with pytest.raises(SystemExit):
        build_parser().parse_args(["predict", str(video), "--model", "i3resnet50", "--backend", "toy"])


def test_the_registry_refuses_what_is_not_a_decoder_and_names_taken_or_unknown():
    class Nameless(Decoder):
        def get_frames(self, wanted):
            return {}

    with pytest.raises(TypeError, match="a subclass of i3zoo.video.Decoder"):
        register_decoder(dict)
    with pytest.raises(ValueError, match="Nameless.name must be a non-empty string other than 'auto', not None"):
        register_decoder(Nameless)
    Nameless.name = "auto"
    with pytest.raises(ValueError, match="other than 'auto', not 'auto'"):
        register_decoder(Nameless)
    Nameless.name = "pyav"
    with pytest.raises(ValueError, match="name 'pyav' is taken by i3zoo.video.decoders.pyav.PyAVDecoder"):
        register_decoder(Nameless)
    with pytest.raises(ValueError, match="no video decoder is registered as 'decord'; registered: pyav, torchcodec"):
        unregister_decoder("decord")
    assert backend_choices() == BACKENDS


def test_a_decoder_is_one_new_module_in_the_decoders_package(tmp_path, video):
    """A copy of the package with ``toy.py`` added to ``i3zoo/video/decoders/`` and nothing else changed: the
    package finds the module itself, and the reader, ``auto``'s status and ``--backend`` all have it."""
    source = tmp_path / "source"
    shutil.copytree(REPO / "i3zoo", source / "i3zoo", ignore=shutil.ignore_patterns("__pycache__"))
    (source / "i3zoo" / "video" / "decoders" / "toy.py").write_text(TOY_DECODER.replace(
        "from i3zoo.video.decoders import", "from ._interface import"))
    code = ("import i3zoo.video as v, i3zoo.video.decoders.toy as toy\n"
            "from i3zoo.cli import build_parser\n"
            "assert v.__file__.startswith(sys.argv[1]), v.__file__\n"
            f"reader = v.VideoReader({str(video)!r}, backend='toy')\n"
            "frames = reader.get_frames([0, 7])\n"
            "args = build_parser().parse_args(['predict', 'x.mp4', '--model', 'i3resnet50', '--backend', 'toy'])\n"
            "print(v.backend_choices(), list(v.decoder_status()), reader.backend, tuple(frames.shape),"
            " toy.WholeFileDecoder.reads, args.backend)\n")
    env = dict(os.environ, PYTHONPATH=str(source))
    result = subprocess.run([sys.executable, "-c", "import sys\n" + code, str(source)], capture_output=True,
                            text=True, timeout=300, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[0] == ("('auto', 'pyav', 'torchcodec', 'toy') ['torchcodec', 'pyav', 'toy'] "
                                            "toy (2, 3, 32, 40) 1 toy")
