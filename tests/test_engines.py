"""The engines as Python APIs (`i3zoo.extract`, `i3zoo.predict`, `i3zoo.engines.load_model`): they write and
return what the commands print, leave the model as they found it, and answer a usage mistake with
`i3zoo.UsageError`, which the command prints as one line with exit status 2. The smallest clips the model takes
(2 frames of 32x32) on PyAV-written videos."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from video_samples import write_audio_only, write_video

import i3zoo
from i3zoo.engines import Extractor, LoadedModel, Predictor, load_model

REPO = Path(__file__).resolve().parents[1]
CLIP = dict(clip_len=2, crop_size=32)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("engines") / "videos"
    root.mkdir()
    write_video(root / "a.mp4", 6, 32, 40, fps=25)
    write_video(root / "b.mp4", 5, 32, 40, fps=10)
    write_audio_only(root / "sound.mp4")
    return root


@pytest.fixture(scope="module")
def loaded():
    return load_model("i3resnet50", random_weights=True)


def _features(path: Path):
    with safe_open(str(path), framework="pt") as f:
        return f.get_tensor("features"), json.loads(f.metadata()["i3zoo"])


def test_extract_writes_what_the_command_writes_and_returns_a_summary(videos, loaded, run_cli, tmp_path):
    # optimize=True: the path the command takes for a job this short (an optimized copy, float32, not compiled)
    summary = i3zoo.extract([videos], loaded, tmp_path / "api", **CLIP, batch_size=3, workers=0, optimize=True,
                            progress=False)
    assert (summary.written, summary.skipped, summary.ok) == (2, 0, False)
    assert summary.failures == [(str(videos / "sound.mp4"), "no video stream (streams: audio)")]
    assert summary.windows == 3 + 2 and summary.seconds > 0 and summary.out == tmp_path / "api"
    command = run_cli("extract", str(videos), "--model", "i3resnet50", "--random-weights", "--clip-len", "2",
                      "--crop-size", "32", "--batch-size", "3", "--workers", "0", "--out", str(tmp_path / "cli"))
    assert command.returncode == 1 and "summary: 2 written, 0 skipped (complete), 1 failed" in command.stdout
    for name in ("a.mp4", "b.mp4"):
        api, api_record = _features(tmp_path / "api" / f"{name}.safetensors")
        cli, cli_record = _features(tmp_path / "cli" / f"{name}.safetensors")
        assert torch.equal(api, cli) and api_record == cli_record
    # the model keeps its classifier: the same loaded model predicts afterwards
    assert loaded.model.num_classes == 1000 and loaded.model(torch.zeros(1, 3, 2, 32, 32)).shape == (1, 1000)
    again = Extractor(loaded, **CLIP, workers=0, optimize=True).extract([videos], tmp_path / "api", progress=False)
    assert (again.written, again.skipped, len(again.failures)) == (0, 2, 1)
    other = Extractor(loaded, clip_len=3, crop_size=32, workers=0)
    plan = other.plan(i3zoo.engines.extraction.find_inputs([videos / "a.mp4"], tmp_path / "api"), tmp_path / "api")
    assert plan.todo == [] and "exists with other settings" in plan.failures[0][1]


def test_predict_returns_what_the_command_prints_as_json(videos, loaded, run_cli):
    paths = [videos / "a.mp4", videos / "sound.mp4"]
    predictions = i3zoo.predict(paths, loaded, **CLIP, num_clips=2, top_k=3, optimize=True)  # the command's path
    assert [r["video"] for r in predictions.results] == [str(p) for p in paths]
    assert predictions.failures == [{"video": str(paths[1]), "error": "no video stream (streams: audio)"}]
    top = predictions.results[0]["top"]
    assert len(top) == 3 and top[0]["probability"] >= top[1]["probability"] >= top[2]["probability"]
    command = run_cli("predict", *map(str, paths), "--model", "i3resnet50", "--random-weights", "--clip-len", "2",
                      "--crop-size", "32", "--num-clips", "2", "--top-k", "3", "--json")
    assert command.returncode == 1
    printed = json.loads(command.stdout)
    for result, expected in zip(printed["results"], predictions.as_dict()["results"]):
        if "top" in result:  # float32 round-off between two runs' batches is allowed, nothing else
            assert [t["class"] for t in result["top"]] == [t["class"] for t in expected["top"]]
            for t, e in zip(result["top"], expected["top"]):
                t["probability"] = pytest.approx(e["probability"], rel=1e-4)
        assert result == expected
    assert {k: v for k, v in printed.items() if k != "results"} == {
        k: v for k, v in predictions.as_dict().items() if k != "results"}


def test_usage_mistakes_are_usage_errors(loaded, videos, tmp_path):
    assert issubclass(i3zoo.UsageError, ValueError)
    with pytest.raises(i3zoo.UsageError, match="unknown model 'i3resnet5'"):
        load_model("i3resnet5")
    with pytest.raises(i3zoo.UsageError, match="carries its own weights"):
        load_model("hf-hub:someone/i3resnet50.tv_in1k", random_weights=True)
    with pytest.raises(i3zoo.UsageError, match="no such file"):
        load_model("i3resnet50", file=str(tmp_path / "missing.pth"))
    with pytest.raises(i3zoo.UsageError, match="batch_size"):
        Extractor(loaded, batch_size=0)
    densenet = LoadedModel(i3zoo.create_model("i3densenet121").eval(), "i3densenet121", {}, random=False)
    with pytest.raises(i3zoo.UsageError, match="clip_len 4 is below i3densenet121's minimum of 8 frames"):
        Extractor(densenet, clip_len=4)
    with pytest.raises(i3zoo.UsageError, match="crop_size 16 is below i3densenet121's minimum of 29 pixels"):
        Predictor(densenet, crop_size=16)
    with pytest.raises(i3zoo.UsageError, match="num_clips and top_k"):
        Predictor(loaded, num_clips=0)
    with pytest.raises(i3zoo.UsageError, match="would write the same output"):
        i3zoo.extract([videos / "a.mp4", videos / "a.mp4"], loaded, tmp_path / "x")
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("args, fragment", [
    (["predict", "VIDEO", "--model", "i3resnet50", "--random-weights", "--num-clips", "0"], "num_clips and top_k"),
    (["extract", "VIDEO", "--model", "i3resnet50", "--random-weights", "--out", "OUT", "--batch-size", "0"],
     "batch_size"),
    (["extract", "--model", "i3resnet50", "--random-weights", "--out", "OUT"], "no videos given"),
    (["export-onnx", "--model", "i3resnet50", "--random-weights", "--out", "x.pt"], ".onnx"),
    (["train", "--train", "T", "--output", "OUT", "--model", "i3resnet50", "--nproc", "0"], "--nproc must be >= 1"),
    (["train", "--train", "T", "--output", "OUT", "--model", "i3resnet50", "--no-pretrained", "--random-weights"],
     "--no-pretrained"),
    (["list", "i3resnet50", "--designs"], "give no model names"),
    (["verify"], "name one or more models"),
])
def test_a_usage_mistake_is_one_line_and_exit_status_2(run_cli, videos, tmp_path, args, fragment):
    names = {"VIDEO": str(videos / "a.mp4"), "OUT": str(tmp_path / "out"), "T": str(videos)}
    result = run_cli(*[names.get(a, a) for a in args])
    assert result.returncode == 2, result.stdout + result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.strip()]
    assert line.startswith(f"i3zoo {args[0]}: error: ") and fragment in line, line
    assert not (tmp_path / "out").exists()


def test_readme_python_api_example_runs_on_the_sample(checkpoint_2d, monkeypatch, capsys, tmp_path):
    """The README's "the same jobs from Python" block, run as written except for the weights' source (a seeded
    2D file stands in for the ImageNet download), in a folder holding a copy of samples/."""
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Video in"):readme.index("## Fine-tuning")]
    (code,) = re.findall(r"The same jobs from Python:\n\n```python\n(.*?)```", section, re.S)
    call = 'load_model("i3resnet50.tv_in1k")'
    assert call in code
    code = code.replace(call, f'load_model("i3resnet50.tv_in1k", file={str(checkpoint_2d("i3resnet50"))!r})')
    shutil.copytree(REPO / "samples", tmp_path / "samples")
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert (namespace["summary"].written, namespace["summary"].skipped, namespace["summary"].failures) == (1, 0, [])
    features, record = _features(tmp_path / "features" / "shapes.mp4.safetensors")
    assert features.shape == (3, 2048) and record["settings"]["weights"]["kind"] == "file"
    (result,) = namespace["predictions"].results
    assert result["clips"] == 3 and len(result["top"]) == 5
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "1 0 []" and printed[1].startswith("{'class': ")
