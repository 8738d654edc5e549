"""Export: ``torch.export`` programs for one model of every (family, temporal design) -- a family or design added
later joins by being registered -- and an ONNX file, written by ``i3zoo export-onnx`` and run by onnxruntime.

Clips are small (32x32 frames, the clip lengths at the floors the export documents) and float32. The weights
are the seeded 2D checkpoint inflated through the user's path, so BatchNorm is not the identity: a program
traced in training mode would not match.
"""

from __future__ import annotations

import contextlib
import io

import onnxruntime
import pytest
import torch
from conftest import relative_error

import i3zoo
from i3zoo.facts import export_table, one_model_per_design
from i3zoo.graph_export import ONNX_INPUT, dynamic_frames_step, dynamic_min_frames, export_program

MODELS = one_model_per_design()
FRAME_SIZE = (32, 32)


def _clip(n: int, t: int, channels: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, channels, t, *FRAME_SIZE, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def inflated(checkpoint_2d):
    """``inflated(name)``: the model filled from the seeded 2D checkpoint, built once in this module."""
    built = {}

    def get(name: str) -> torch.nn.Module:
        if name not in built:
            built[name] = i3zoo.create_model(name, pretrained=True,
                                             pretrained_cfg_overlay=dict(file=str(checkpoint_2d(name)))).eval()
        return built[name]

    yield get
    built.clear()


def test_one_model_per_design_covers_every_family_and_design():
    from i3zoo.registry import meta_model

    def design(name):
        model = meta_model(name)
        return type(model).__mro__[1].__name__, model.temporal

    designs = [design(n) for n in i3zoo.list_models()]
    assert sorted(design(n) for n in MODELS) == sorted(set(designs))


@pytest.mark.parametrize("name", MODELS)
def test_torch_export_with_dynamic_batch_and_clip_length_matches_eager(name, inflated):
    model = inflated(name)
    floor, step = dynamic_min_frames(model), dynamic_frames_step(model)
    program = export_program(model, FRAME_SIZE).module()
    with torch.no_grad():
        # an odd length too: floor divisions in the strided layers (ceil-mode pools: T steps from the floor)
        for n, t in ((1, floor), (3, floor + 3 * step)):
            x = _clip(n, t)
            assert relative_error(program(x), model(x)) <= 1e-6, (n, t)
    if floor > model.min_input_size[0]:
        # below the floor a time-reduced map would have one frame: the program refuses the clip
        with pytest.raises(Exception, match="frames|Guard|range"):
            program(_clip(1, floor - 1))


def test_fixed_clip_length_export_takes_clips_below_the_dynamic_floor(inflated):
    model = inflated("i3resnet50")
    assert dynamic_min_frames(model) == 17 > 16  # time is reduced 16x: a 16-frame clip ends in one frame
    program = export_program(model, FRAME_SIZE, frames=16, dynamic_frames=False).module()
    with torch.no_grad():
        x = _clip(2, 16)
        assert relative_error(program(x), model(x)) <= 1e-6


def test_ceil_mode_pools_make_the_dynamic_clip_length_step():
    """Inception-v1's pools round up: the time stride up to its last such pool (2 x 2 x 2 = 8) is the step, and its
    floor is the first T whose every time-reduced map keeps 2 frames, counted with the ceil rule."""
    model = i3zoo.create_model("i3inception_v1").eval()
    assert (dynamic_min_frames(model), dynamic_frames_step(model)) == (7, 8)
    from i3zoo.registry import meta_model

    # DeepMind's design of Inception-v1 rounds up too (TF "SAME": ceil(T / stride) frames)
    inceptions = ("i3inception_v1", "i3inception_v1_dm")
    assert dynamic_frames_step(meta_model("i3inception_v1_dm")) == 8
    assert {dynamic_frames_step(meta_model(name)) for name in MODELS if name not in inceptions} == {1}
    with pytest.raises(ValueError, match=r"T = 7 \+ a multiple of 8"):
        export_program(model, FRAME_SIZE, frames=10)


def test_export_refuses_sizes_the_model_does_not_take():
    model = i3zoo.create_model("i3densenet121").eval()
    with pytest.raises(ValueError, match="H >= 29"):
        export_program(model, (16, 16))
    with pytest.raises(ValueError, match=">= 16"):
        export_program(model, FRAME_SIZE, frames=8)
    with pytest.raises(TypeError, match="i3zoo model"):
        export_program(torch.nn.Conv3d(3, 8, 3), FRAME_SIZE)


@pytest.fixture(scope="module")
def onnx_export(tmp_path_factory):
    """``i3zoo export-onnx`` of I3D's design (its 3x1x1 and 5x7x7 kernels with mean inflation put the replicated
    temporal padding in the graph)."""
    from i3zoo.cli import main

    path = tmp_path_factory.mktemp("onnx") / "i3resnet50_i3d.onnx"
    args = ["export-onnx", "--model", "i3resnet50_i3d", "--random-weights", "--inflation", "mean",
            "--frame-size", *map(str, FRAME_SIZE), "--out", str(path)]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(args) == 0
    # which weights it traced, and what the file takes
    assert "seeded random weights" in printed.getvalue()
    assert "(N, 3, T, 32, 32)" in printed.getvalue() and "T >= 2 (dynamic)" in printed.getvalue()
    return path, args


def test_onnx_file_matches_pytorch_for_any_batch_and_clip_length(onnx_export):
    from i3zoo.cli import build_parser
    from i3zoo.cli.model_options import load_model_from_args

    path, args = onnx_export
    model = load_model_from_args(build_parser().parse_args(args)).model  # the same model the command exported
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (clip_input,) = session.get_inputs()
    assert clip_input.name == ONNX_INPUT and clip_input.shape[1:] == [3, "frames", *FRAME_SIZE]
    # from the model's own minimum (2 frames, below torch.export's dynamic floor of 4: the ONNX graph has no
    # guard) to a clip longer than the traced example
    assert (model.min_input_size[0], dynamic_min_frames(model)) == (2, 4)
    with torch.no_grad():
        for n, t in ((1, 2), (3, 5), (2, 9)):
            x = _clip(n, t)
            (out,) = session.run(None, {ONNX_INPUT: x.numpy()})
            assert relative_error(torch.from_numpy(out), model(x)) <= 1e-4, (n, t)
    assert not [p for p in path.parent.iterdir() if p != path]  # written under a temporary name, then renamed


def test_export_onnx_command_refuses_bad_arguments_in_one_line(run_cli, tmp_path):
    for bad, says in ((["--frames", "0"], "--frames"), (["--frame-size", "224"], "--frame-size"),
                      (["--out", str(tmp_path / "x.pt")], ".onnx")):
        args = ["--out", str(tmp_path / "x.onnx")] + bad if bad[0] != "--out" else bad
        done = run_cli("export-onnx", "--model", "i3resnet50", "--random-weights", *args)
        assert done.returncode != 0 and says in done.stderr and len(done.stderr.strip().splitlines()) == 1, bad
    assert not list(tmp_path.glob("*.onnx*")) and not list(tmp_path.glob(".*.onnx*"))


def test_readme_export_table_is_current():
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    match = re.search(r"<!-- export-table:start -->\n(.*?)\n<!-- export-table:end -->", readme, re.S)
    assert match, "README.md lacks the export-table markers"
    assert match.group(1).strip() == export_table(), "README export table is stale: run scripts/update_readme.py"
