"""``i3zoo.inflate`` and ``inflate:LIB/NAME``: any timm or torchvision 2D CNN as a video model, exact on boring videos.

The equivalence is checked in float64 with random weights and randomized BatchNorm statistics, in both inflation
modes, for a spread of families whose convolutions differ (plain, grouped, depthwise, TF "same", weight-standardized,
mixed, blur pools, convolutional heads, a ViT's patch embedding); timm's ``test_*`` networks keep it cheap where
they exist. torchvision's ResNet-50 in the ``i3d`` / ``slowonly`` designs is the hand-written ``i3resnet50_i3d`` /
``i3resnet50_slowonly`` layer for layer.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import timm
import torch
import torchvision
from conftest import boring_video, float64_default, relative_error
from torch import nn

import i3zoo
from benchmarks.coverage import randomized  # random BatchNorm statistics and affines: no norm is the identity
from i3zoo.models.designs import Design, StageRule
from i3zoo.models.time_layers import TimeConv, UninflatableError

REPO = Path(__file__).resolve().parents[1]


def equivalence(net: nn.Module, design="i3d", inflation="center", size=32, frames=2) -> float:
    """Relative error of the inflated model on a boring clip against the 2D network on its frame (float64 has no
    fast 3D convolution on CPU: the smallest clip the design takes, 32x32 = the networks' total stride)."""
    images = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        reference = net(images)
        model = i3zoo.inflate(copy.deepcopy(net), design, inflation).eval()
        return relative_error(model(boring_video(images, frames)), reference)


#: one network per kind of convolution the inflation must handle (timm names; small ones)
FAMILIES = {
    "test_resnet": "ResNet",
    "resnext26ts": "ResNeXt (grouped 3x3)",
    "regnetx_002": "RegNet (grouped)",
    "test_efficientnet": "EfficientNet (depthwise, squeeze-excite)",
    "tf_efficientnet_lite0": "EfficientNet, TF 'same' padding",
    "mobilenetv2_050": "MobileNetV2",
    "tf_mobilenetv3_small_minimal_100": "MobileNetV3 (convolutional head, TF 'same')",
    "test_convnext": "ConvNeXt (LayerNorm, 7x7 depthwise)",
    "densenet121": "DenseNet",
    "cs3darknet_focus_s": "CSPNet",
    "hrnet_w18_small": "HRNet (feature taps that name branches)",
    "repvgg_a0": "RepVGG",
    "inception_v3": "Inception-v3",
    "test_nfnet": "NFNet (scaled weight standardization)",
    "tf_mixnet_s": "MixNet (mixed kernels, TF 'same')",
    "resnetblur18": "ResNet with blur pools",
    "test_vit": "ViT (per-frame attention, tubelet patch embedding)",
}


@pytest.fixture(scope="module")
def family_nets():
    with float64_default():
        torch.manual_seed(0)
        nets = {name: randomized(timm.create_model(name)) for name in FAMILIES}
    return nets


@pytest.mark.parametrize("name", FAMILIES)
def test_boring_clip_gives_the_2d_output_in_both_modes(family_nets, name):
    net = family_nets[name]
    size = net.pretrained_cfg["input_size"][-1] if net.pretrained_cfg.get("fixed_input_size") else 75 \
        if name == "inception_v3" else 32
    with float64_default():
        for inflation in ("center", "mean"):
            assert equivalence(net, "i3d", inflation, size) < 1e-12, (name, inflation)


def test_xception_in_float32():
    """Xception's 728 depthwise groups have no fast float64 kernel on CPU (half a minute a forward); float32's
    bound, with the feature taps inside its blocks."""
    torch.manual_seed(0)
    net = randomized(timm.create_model("xception41"))
    for inflation in ("center", "mean"):
        assert equivalence(net, "i3d", inflation) < 1e-5, inflation


def test_the_design_decides_what_mixes_time(family_nets):
    """c2d is the 2D network per frame (a permutation of the frames changes nothing); i3d mixes time (in mean mode:
    centre initialisation is per frame until trained)."""
    net = family_nets["test_resnet"]
    clip = torch.randn(1, 3, 4, 32, 32, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    shuffled = clip[:, :, [2, 0, 3, 1]]
    with float64_default(), torch.no_grad():
        c2d = i3zoo.inflate(copy.deepcopy(net), "c2d").eval()
        i3d = i3zoo.inflate(copy.deepcopy(net), "i3d", "mean").eval()
        assert relative_error(c2d(shuffled), c2d(clip)) < 1e-13
        assert relative_error(i3d(shuffled), i3d(clip)) > 1e-3
        per_frame = torch.stack([net(clip[:, :, t]) for t in range(4)]).mean(0)
        assert relative_error(c2d(clip), per_frame) < 1e-13
    assert not c2d.time_layers and not c2d.time_pools
    assert not Design("mine").mixes_time and Design("mine", stem_kernel=3).mixes_time


def test_torchvision_resnet50_is_the_hand_written_preset():
    """torchvision's ResNet-50 in the i3d and slowonly designs: the same layers, parameters and outputs as
    i3resnet50_i3d and i3resnet50_slowonly with the same weights, on a clip that is not boring."""
    for design in ("i3d", "slowonly"):
        with float64_default():
            torch.manual_seed(0)
            preset = randomized(i3zoo.create_model(f"i3resnet50_{design}", num_classes=10))
            model = i3zoo.inflate(torchvision.models.resnet50(num_classes=10), design).eval()
        target = model.state_dict()
        assert {k.removeprefix("net.") for k in target} == set(preset.state_dict())
        model.load_state_dict({f"net.{k}": v.reshape(target[f"net.{k}"].shape) for k, v in preset.state_dict().items()})
        kernels = {k: tuple(v.shape) for k, v in target.items() if v.dim() == 5}
        assert kernels == {f"net.{k}": tuple(v.shape) for k, v in preset.state_dict().items()
                           if v.dim() == 5 and v.shape[2] > 1}
        assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in preset.parameters())
        assert model.temporal_reduction == preset.temporal_reduction
        assert model.min_input_size[0] == preset.min_input_size[0]
        clip = torch.randn(1, 3, 4, 32, 32, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
        with torch.no_grad():
            assert relative_error(model.forward_features(clip), preset.forward_features(clip)) < 1e-12
            assert relative_error(model(clip), preset(clip)) < 1e-12


def test_torchvision_networks_inflate_exactly():
    with float64_default():
        torch.manual_seed(0)
        for arch in ("mobilenet_v3_small", "shufflenet_v2_x0_5", "regnet_x_400mf"):
            net = randomized(torchvision.models.get_model(arch, weights=None))
            assert equivalence(net, "i3d", "mean") < 1e-12, arch


def test_features_only_gives_5d_maps(family_nets):
    model = i3zoo.create_model("inflate:timm/test_resnet", design="i3d", features_only=True, out_indices=(0, 2, -1))
    maps = model(torch.randn(1, 3, 4, 64, 64))
    assert [m.shape[1] for m in maps] == [f["num_chs"] for f in model.feature_info]
    for m, info in zip(maps, model.feature_info):
        assert m.dim() == 5 and m.shape[2] == 4 // info["temporal_reduction"]
        assert m.shape[-1] == 64 // info["reduction"]
    full = i3zoo.create_model("inflate:timm/test_resnet", design="i3d")
    assert full.forward_features(torch.randn(1, 3, 4, 64, 64)).shape[1] == full.num_features
    assert full.forward_head(torch.randn(2, full.num_features, 2, 2, 2), pre_logits=True).shape == (
        2, full.num_features)
    # indices as timm takes them, checked as every i3zoo model checks them
    clip = torch.randn(1, 3, 4, 64, 64)
    count = len(full.feature_info)
    every = full.forward_intermediates(clip)
    assert len(every) == count
    for picked, expected in ((2, every[-2:]), ([-1, 0], [every[-1], every[0]])):
        assert len(full.forward_intermediates(clip, picked)) == len(expected)
        assert all(torch.equal(a, b) for a, b in zip(full.forward_intermediates(clip, picked), expected))
    with pytest.raises(ValueError, match=rf"indices must be .* range\(-{count}, {count}\); got \({count},\)"):
        full.forward_intermediates(clip, (count,))
    with pytest.raises(ValueError, match=rf"out_indices must be .*; got \(0, {count}\)"):
        i3zoo.create_model("inflate:timm/test_resnet", features_only=True, out_indices=(0, count))


def test_two_d_weights_from_a_file(tmp_path):
    """pretrained_cfg_overlay=dict(file=...) fills the 2D network the way its library reads files, then inflates."""
    with float64_default():
        torch.manual_seed(4)
        net = randomized(timm.create_model("test_resnet"))
        torch.save(net.state_dict(), tmp_path / "2d.pth")
        vision = randomized(torchvision.models.get_model("mobilenet_v3_small", weights=None))
        torch.save(vision.state_dict(), tmp_path / "tv.pth")
        images = torch.randn(1, 3, 32, 32, dtype=torch.float64)
        for name, reference, file in (("timm/test_resnet", net, "2d.pth"),
                                      ("torchvision/mobilenet_v3_small", vision, "tv.pth")):
            model = i3zoo.create_model(f"inflate:{name}", pretrained=True, design="slowonly",
                                       pretrained_cfg_overlay=dict(file=str(tmp_path / file))).eval()
            with torch.no_grad():
                assert relative_error(model(boring_video(images, 2)), reference(images)) < 1e-12


def test_save_and_load_round_trip(tmp_path):
    model = i3zoo.create_model("inflate:timm/test_efficientnet", design="i3d", inflation="mean", num_classes=7).eval()
    folder = i3zoo.save_pretrained(model, tmp_path / "saved")
    config = json.loads((folder / "config.json").read_text())
    assert config["architecture"] == "inflate"
    assert config["model_args"]["source"] == "timm/test_efficientnet" and config["model_args"]["design"] == "i3d"
    card = (folder / "README.md").read_text()
    assert "timm/test_efficientnet" in card and "`i3d`" in card
    clip = torch.randn(1, 3, 2, 32, 32)
    for loaded in (i3zoo.create_model(f"local-dir:{folder}", pretrained=True),
                   timm.create_model(f"local-dir:{folder}", pretrained=True)):
        assert loaded.inflation == "mean" and loaded.num_classes == 7
        with torch.no_grad():
            assert torch.equal(loaded.eval()(clip), model(clip))
    own = i3zoo.inflate(timm.create_model("test_resnet"), Design("mine", stem_kernel=3))
    with pytest.raises(ValueError, match="design of its own"):
        i3zoo.save_pretrained(own, tmp_path / "own")


def test_torch_hub_and_timm_names():
    hub = torch.hub.load(str(REPO), "inflate", "timm/test_resnet", source="local", design="c2d", num_classes=3)
    assert isinstance(hub, i3zoo.InflatedNet) and hub.num_classes == 3 and hub.design.name == "c2d"
    import hubconf

    assert "inflate:timm/convnext" in hubconf.inflate.__doc__
    timm_made = timm.create_model("inflate", source="torchvision/shufflenet_v2_x0_5", design="slowonly")
    assert timm_made.describe() == "inflate:torchvision/shufflenet_v2_x0_5 (slowonly design)"


def test_training_conventions():
    model = i3zoo.create_model("inflate:timm/test_resnet", frozen_stages=1, norm_eval=True).train()
    stem, stage1 = model.stage_modules()[:2]
    assert all(not p.requires_grad for m in stem + stage1 for p in m.parameters())
    assert all(p.requires_grad for m in model.stage_modules()[2] for p in m.parameters())
    assert not any(m.training for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    model.set_grad_checkpointing(True)
    assert model.net.grad_checkpointing


def test_clear_errors():
    with pytest.raises(ValueError, match="inflate:timm/NAME"):
        i3zoo.create_model("inflate:keras/resnet50")
    with pytest.raises(ValueError, match="unknown timm model 'resnet5O'"):
        i3zoo.create_model("inflate:timm/resnet5O")
    with pytest.raises(ValueError, match="inflate its timm counterpart"):
        i3zoo.inflate(torchvision.models.googlenet(weights=None, init_weights=False, aux_logits=False))
    with pytest.raises(ValueError, match="unknown design 'i3"):
        i3zoo.inflate(timm.create_model("test_resnet"), "i3")
    with pytest.raises(ValueError, match="odd positive"):
        StageRule(time_kernel=2)

    class OwnConv(nn.Conv2d):  # a convolution whose forward i3zoo cannot know
        def forward(self, x):
            return super().forward(x) * 2

    net = timm.create_model("test_resnet")
    net.conv1[0] = OwnConv(3, 24, 3, 2, 1, bias=False)
    with pytest.raises(UninflatableError, match=r"conv1\.0 .*OwnConv"):
        i3zoo.inflate(net, "i3d")
    assert isinstance(i3zoo.inflate(net, "c2d").net.conv1[0], OwnConv)  # per frame it stays exact as it is
    with pytest.raises(ValueError, match="video tensor of shape"):
        i3zoo.inflate(timm.create_model("test_resnet"))(torch.randn(1, 3, 64, 64))


def test_extract_takes_an_inflate_name(run_cli, tmp_path):
    from video_samples import write_video

    (tmp_path / "videos").mkdir()
    write_video(tmp_path / "videos" / "a.mp4", 6, 32, 40)
    result = run_cli("extract", str(tmp_path / "videos"), "--model", "inflate:timm/test_resnet", "--design", "c2d",
                     "--random-weights", "--clip-len", "2", "--crop-size", "32", "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert "random" in result.stdout + result.stderr
    assert list((tmp_path / "out").rglob("*.safetensors"))
    refused = run_cli("extract", str(tmp_path / "videos"), "--model", "i3resnet18", "--design", "c2d",
                      "--random-weights", "--out", str(tmp_path / "out2"))
    assert refused.returncode == 2 and "inflate: models" in refused.stderr


def test_time_conv_is_only_called_inside_its_network():
    conv = i3zoo.inflate(timm.create_model("test_resnet"), "i3d").net.conv1[0]
    assert isinstance(conv, TimeConv)
    fresh = copy.deepcopy(conv)
    fresh.state.batch = None
    with pytest.raises(RuntimeError, match="inside an inflated video network"):
        fresh(torch.randn(2, 3, 8, 8))


def test_export_with_dynamic_batch_and_clip_length(tmp_path):
    model = i3zoo.create_model("inflate:timm/test_resnet", design="i3d").eval()
    program = i3zoo.export_program(model, (32, 32))
    for shape in ((1, 3, 4, 32, 32), (3, 3, 7, 32, 32)):
        clip = torch.randn(*shape)
        with torch.no_grad():
            assert torch.allclose(program.module()(clip), model(clip), atol=1e-5, rtol=1e-4)
    import onnxruntime as onnx

    path = i3zoo.export_onnx(model, tmp_path / "inflated.onnx", (32, 32))
    clip = torch.randn(2, 3, 6, 32, 32)
    session = onnx.InferenceSession(str(path))
    with torch.no_grad():
        assert torch.allclose(torch.from_numpy(session.run(None, {"clip": clip.numpy()})[0]), model(clip),
                              atol=1e-5, rtol=1e-4)


def test_committed_coverage_table_holds_for_a_sample():
    """The README's coverage table is the committed run's, and a fresh run of a sample of its rows agrees (exact or
    not, per-frame or time-mixing)."""
    from benchmarks.coverage import RESULTS, run

    committed = json.loads((RESULTS / f"timm-{timm.__version__}" / "coverage.json").read_text())
    rendered = (RESULTS / f"timm-{timm.__version__}" / "coverage.md").read_text().strip()
    readme = (REPO / "README.md").read_text()
    assert rendered in readme, "README coverage table is stale: run scripts/update_readme.py"
    from readme_blocks import check_committed_blocks

    from benchmarks.inflate_speed import RESULTS as SPEED
    from benchmarks.inflate_speed import render_markdown

    # the speed rows too, as the benchmark measured them; and the words on them
    for measured in check_committed_blocks("inflate-speed", SPEED, "speed.json", "speed.md", render_markdown):
        seconds = json.loads((measured / "speed.json").read_text())["seconds"]
        faster = seconds["inflate:torchvision/resnet50 (i3d)"] <= seconds["i3resnet50_i3d"]
        assert ("which the per-frame layers' 2D kernels make up for here" in " ".join(readme.split())) == faster
    rows = {(r["library"], r["family"]): r for r in committed["rows"]}
    for key in (("timm", "resnet"), ("timm", "mobilenetv3"), ("torchvision", "shufflenetv2")):
        row = rows[key]
        build = (lambda n=row["architecture"]: timm.create_model(n)) if key[0] == "timm" else \
            (lambda n=row["architecture"]: torchvision.models.get_model(n, weights=None))
        fresh = run(row["architecture"], build)
        assert (fresh["exact"], fresh["time"]) == (row["exact"], row["time"]), key


def test_fine_tune_an_inflated_network(tmp_path):
    """``i3zoo train``'s engine takes an inflate: name; the trained folder's card says it was fine-tuned, and it
    loads back as the same network."""
    from motion_videos import write_motion_dataset

    from i3zoo.train import TrainConfig, fit

    write_motion_dataset(tmp_path / "train", 2, seed=0)
    result = fit(TrainConfig(train=str(tmp_path / "train"), output=str(tmp_path / "run"),
                             model="inflate:timm/test_resnet", pretrained=False, design="c2d",
                             epochs=1, batch_size=2, clip_len=2, crop_size=32, workers=0, progress=False))
    folder = Path(result.folder) if hasattr(result, "folder") else tmp_path / "run"
    saved = [p.parent for p in folder.rglob("config.json")]
    assert saved, list(folder.rglob("*"))
    assert "fine-tuned" in (saved[0] / "README.md").read_text()
    loaded = i3zoo.create_model(f"local-dir:{saved[0]}", pretrained=True)
    assert isinstance(loaded, i3zoo.InflatedNet) and loaded.design.name == "c2d"


def test_optimize_for_inference_takes_an_inflated_network():
    """The fast path the commands take on long jobs: an inflated network's copy in float32 and bfloat16 (its
    BatchNorms are left to Inductor's freezing, which compile=True adds; test_fast_inference.py compiles)."""
    model = i3zoo.create_model("inflate:timm/test_resnet", design="i3d").eval()
    clip = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        reference = model(clip)
        for dtype, bound in ((torch.float32, 1e-6), (torch.bfloat16, 3e-2)):
            fast = i3zoo.optimize_for_inference(model, dtype=dtype)
            assert relative_error(fast(clip).float(), reference) < bound, dtype
