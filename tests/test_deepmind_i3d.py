"""DeepMind's I3D (``i3inception_v1_dm``) and its two PyTorch ports' checkpoints.

* Padding: every "SAME" layer pads as TensorFlow does (``"tf"``: ``ceil(n / s)`` outputs, ``max((ceil(n / s) - 1)
  * s + k - n, 0)`` in all, the smaller half first) for every clip length from the minimum to 64, checked against
  ``F.pad`` + a plain layer on small real tensors, and as hassony2's port does as video_features runs it
  (``"static"``: ``max(k - s, 0)`` whatever the size, ceil-mode pools); the design's size rules equal the layers'.
* The network: DeepMind's 12,697,264 parameters (12,675,312 for the 2-channel flow stream); each tag's numerics.
* The ports' layouts: the key maps both ways, and strict loading (a missing, an extra and a misshapen key each
  named, the other port's layout refused with the tag to use, a model that does not compute as the port refused).

The ports' own code cannot be part of the suite (neither is installable); README "I3D features as in the papers"
records what running it beside i3zoo with the same weights measured.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import i3zoo
from i3zoo.models.same_padding import SameConv3d, SameMaxPool3d, SameSpec, same_pads
from i3zoo.weights.checkpoints import CheckpointError
from i3zoo.weights.deepmind_i3d import PORTS, port_key_map, to_port_state_dict
from i3zoo.weights.inflate import CheckpointMismatchError

ARCH = "i3inception_v1_dm"
STRIDED = [((7, 7, 7), (2, 2, 2)), ((1, 3, 3), (1, 2, 2)), ((3, 3, 3), (2, 2, 2)), ((2, 2, 2), (2, 2, 2))]


def tensorflow_pads(n: int, k: int, s: int):
    """TensorFlow's SAME rule as its documentation writes it (tf.nn.convolution)."""
    out = -(-n // s)
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def reference(x, kernel, stride, pads, pool, weight=None, ceil_mode=False):
    (t0, t1), (h0, h1), (w0, w1) = pads
    padded = F.pad(x, (w0, w1, h0, h1, t0, t1))
    return F.max_pool3d(padded, kernel, stride, ceil_mode=ceil_mode) if pool else F.conv3d(padded, weight,
                                                                                           stride=stride)


@pytest.mark.parametrize("kernel, stride", STRIDED)
def test_tf_padding_is_tensorflows_for_every_clip_length(kernel, stride):
    conv = SameConv3d(1, 1, SameSpec(kernel, stride))
    pool = SameMaxPool3d(SameSpec(kernel, stride))
    generator = torch.Generator().manual_seed(0)
    for frames in range(1, 65):
        size = (frames, 2 + frames % 3, 3)  # odd and even frame sizes too
        pads = [tensorflow_pads(n, k, s) for n, k, s in zip(size, kernel, stride)]
        assert [same_pads(n, k, s, "tf") for n, k, s in zip(size, kernel, stride)] == pads
        x = torch.rand(1, 1, *size, generator=generator)
        expected_size = tuple(-(-n // s) for n, s in zip(size, stride))
        with torch.no_grad():
            for layer, pooling in ((conv, False), (pool, True)):
                out = layer(x)
                assert out.shape[2:] == expected_size, (layer, size)
                assert torch.equal(out, reference(x, kernel, stride, pads, pooling, conv.weight))
                assert tuple(layer.spec.output_size(n, axis) for axis, n in enumerate(size)) == expected_size


@pytest.mark.parametrize("kernel, stride", STRIDED)
def test_static_padding_is_the_video_features_ports(kernel, stride):
    """hassony2's ``get_padding_shape`` as video_features runs it: ``max(k - s, 0)`` split the smaller half first,
    whatever the input size; convolutions round down, pools (``ceil_mode=True``) up."""
    spec = SameSpec(kernel, stride, rule="static")
    conv = SameConv3d(1, 1, spec)
    pool = SameMaxPool3d(SameSpec(kernel, stride, rule="static", ceil_mode=True))
    pads = [(max(k - s, 0) // 2, max(k - s, 0) - max(k - s, 0) // 2) for k, s in zip(kernel, stride)]
    for frames in range(max(kernel[0] - max(kernel[0] - stride[0], 0), 1), 65):
        size = (frames, 3 + frames % 2, 4)
        x = torch.rand(1, 1, *size, generator=torch.Generator().manual_seed(frames))
        with torch.no_grad():
            assert torch.equal(conv(x), reference(x, kernel, stride, pads, False, conv.weight))
            assert torch.equal(pool(x), reference(x, kernel, stride, pads, True, ceil_mode=True))


@pytest.fixture(scope="module")
def flow_model():
    return i3zoo.create_model(f"{ARCH}.k400_flow_piergiaj").eval()


@pytest.mark.parametrize("rule", ["tf", "static"])
def test_the_designs_size_rules_are_the_networks(rule):
    """``feature_map_size`` (the design's reduction path) is what the network gives, from the minimum clip to 64
    frames; every strided layer is a SAME layer of the rule."""
    with torch.device("meta"):
        model = i3zoo.create_model(ARCH, num_classes=400, same_padding=rule).eval()
    strided = [m for m in model.modules() if isinstance(m, (SameConv3d, SameMaxPool3d)) and m.spec.stride != (1,) * 3]
    assert len(strided) == 5 and all(m.spec.rule == rule for m in strided)
    assert model.min_input_size == ((1, 1, 1) if rule == "tf" else (2, 2, 2))
    for frames in (model.min_input_size[0], 17, 64):
        clip = (frames, 31 + frames % 2, 32)
        features = model.forward_features(torch.empty(1, 3, *clip, device="meta"))
        assert features.shape[2:] == model.feature_map_size(clip)


def test_parameter_counts_are_deepminds(flow_model):
    with torch.device("meta"):
        rgb = i3zoo.create_model(f"{ARCH}.k400_rgb_piergiaj")
    assert sum(p.numel() for p in rgb.parameters()) == 12_697_264
    assert sum(p.numel() for p in flow_model.parameters()) == 12_675_312
    assert rgb.num_classes == len(rgb.pretrained_cfg["label_names"]) == 400
    assert rgb.pretrained_cfg["label_names"][:2] == ("abseiling", "air drumming")


@pytest.mark.parametrize("port, padding, eps", [("piergiaj", "tf", 1e-3), ("hassony2", "static", 1e-5)])
def test_each_tag_computes_as_its_port(port, padding, eps):
    for stream, channels in (("rgb", 3), ("flow", 2)):
        with torch.device("meta"):
            model = i3zoo.create_model(f"{ARCH}.k400_{stream}_{port}")
        norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm3d)]
        assert len(norms) == 57 and {m.eps for m in norms} == {eps}
        assert (model.same_padding, model.in_chans, model.transform_input) == (padding, channels, False)
        cfg = model.pretrained_cfg
        assert (cfg["mean"], cfg["std"], cfg["clip_len"]) == ((0.5,) * 3, (0.5,) * 3, 64)  # [-1, 1] input
        assert cfg["url"].startswith(PORTS[port].repository.replace("github.com", "raw.githubusercontent.com"))


def test_the_head_is_deepminds():
    """A 2x7x7 average pool at stride 1, then the mean (at 224: the first and last frames weigh half)."""
    with torch.device("meta"):
        model = i3zoo.create_model(ARCH, num_classes=0)
    x = torch.rand(2, 5, 4, 8, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    expected = F.avg_pool3d(x, (2, 7, 7), stride=1).mean(dim=(2, 3, 4))
    assert torch.allclose(model.forward_head(x), expected, rtol=1e-12, atol=0)
    assert not torch.allclose(expected, x.mean(dim=(2, 3, 4)))
    small = x[:, :, :1, :3, :3]  # smaller than the pool: the whole map
    assert torch.allclose(model.forward_head(small), small.mean(dim=(2, 3, 4)))


@pytest.mark.parametrize("port", list(PORTS))
def test_key_maps_both_ways(port, flow_model):
    names = port_key_map(port)
    state = flow_model.state_dict()
    assert sorted(names.values()) == sorted(state) and len(set(names)) == len(names)  # one to one
    layout = PORTS[port]
    examples = {"piergiaj": {"Conv3d_1a_7x7.conv3d.weight": "conv1.conv.weight",
                             "Mixed_3b.b0.conv3d.weight": "inception3a.branch1.conv.weight",
                             "Mixed_4f.b2b.bn.running_var": "inception4e.branch3.1.bn.running_var",
                             "Mixed_5c.b3b.bn.bias": "inception5b.branch4.1.bn.bias",
                             "logits.conv3d.bias": "fc.bias"},
                "hassony2": {"conv3d_1a_7x7.batch3d.running_mean": "conv1.bn.running_mean",
                             "conv3d_2c_3x3.conv3d.weight": "conv3.conv.weight",
                             "mixed_3b.branch_0.conv3d.weight": "inception3a.branch1.conv.weight",
                             "mixed_5b.branch_1.1.batch3d.weight": "inception5a.branch2.1.bn.weight",
                             "conv3d_0c_1x1.conv3d.weight": "fc.weight"}}[port]
    assert {k: names[k] for k in examples} == examples
    theirs = to_port_state_dict(state, port)
    assert theirs[f"{layout.head}.conv3d.weight"].shape == (400, 1024, 1, 1, 1)
    assert set(theirs) == set(names)


@pytest.fixture(scope="module")
def port_files(tmp_path_factory, flow_model):
    """The flow model's (random) weights saved in each port's layout, as the ports' files hold them (no
    ``num_batches_tracked``: the files were saved by PyTorch 0.3)."""
    folder = tmp_path_factory.mktemp("ports")
    files = {}
    for port in PORTS:
        state = {k: v for k, v in to_port_state_dict(flow_model.state_dict(), port).items()
                 if not k.endswith("num_batches_tracked")}
        files[port] = folder / f"{port}_flow.pt"
        torch.save(state, files[port])
    return files


def load(tag, file, **kwargs):
    return i3zoo.create_model(f"{ARCH}.{tag}", pretrained=True, pretrained_cfg_overlay=dict(file=str(file)), **kwargs)


def test_a_ports_file_loads_through_its_tag(port_files, flow_model):
    loaded = load("k400_flow_piergiaj", port_files["piergiaj"])
    expected = flow_model.state_dict()
    assert all(torch.equal(v, expected[k]) for k, v in loaded.state_dict().items() if "num_batches" not in k)
    fresh_head = load("k400_flow_piergiaj", port_files["piergiaj"], num_classes=5)
    assert fresh_head.fc.out_features == 5


def test_the_other_ports_layout_is_refused_with_the_tag_to_use(port_files):
    with pytest.raises(CheckpointError, match=r"piergiaj's I3D layout, not hassony2's.*use the tag "
                                              r"'k400_flow_piergiaj'"):
        load("k400_flow_hassony2", port_files["piergiaj"])
    with pytest.raises(CheckpointError, match=r"hassony2's I3D layout.*'k400_flow_hassony2'"):
        load("k400_rgb_piergiaj", port_files["hassony2"], in_chans=2)


def test_a_model_that_does_not_compute_as_the_port_is_refused(port_files):
    with pytest.raises(CheckpointError,
                       match=r"same_padding='tf' \(the tag's: 'static'\); bn_eps=0.001 \(the tag's: 1e-05\)"):
        load("k400_flow_hassony2", port_files["hassony2"], bn_eps=1e-3, same_padding="tf")
    with pytest.raises(CheckpointError, match="inflation='mean'"):
        load("k400_flow_piergiaj", port_files["piergiaj"], inflation="mean")


def test_every_misfit_is_named(tmp_path, port_files):
    state = torch.load(port_files["piergiaj"], weights_only=True)
    del state["Mixed_4c.b1b.bn.running_mean"]
    state["Mixed_4c.b9.conv3d.weight"] = torch.zeros(1)
    state["Mixed_3c.b0.conv3d.weight"] = state["Mixed_3c.b0.conv3d.weight"][:-1]
    path = tmp_path / "broken.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointMismatchError) as caught:
        load("k400_flow_piergiaj", path)
    message = str(caught.value)
    assert "does not fill (1): Mixed_4c.b1b.bn.running_mean (as inception4b.branch2.1.bn.running_mean)" in message
    assert "no place in the model (1): Mixed_4c.b9.conv3d.weight" in message
    assert ("Mixed_3c.b0.conv3d.weight -> inception3b.branch1.conv.weight: checkpoint (127, 256, 1, 1, 1), "
            "model (128, 256, 1, 1, 1)") in message


def test_save_pretrained_keeps_the_ports_numerics(tmp_path, port_files):
    model = load("k400_flow_hassony2", port_files["hassony2"])
    i3zoo.save_pretrained(model, tmp_path / "saved")
    with torch.device("meta"):
        again = i3zoo.create_model(f"local-dir:{tmp_path / 'saved'}")
    assert (again.same_padding, again.bn_eps, again.in_chans) == ("static", 1e-5, 2)


@pytest.mark.parametrize("name", ["i3inception_v1_dm.k400_flow_hassony2", "i3resnet50_i3d.ptv_k400"])
def test_random_weights_of_a_video_checkpoint_tag(name):
    """``--random-weights`` with a tag whose weights are a Kinetics checkpoint (no 2D network to seed): the tag's
    own network and numerics, seeded, BatchNorm statistics randomized, recorded as random -- alike every time."""
    from i3zoo.engines.loading import load_model

    first, second = load_model(name, random_weights=True), load_model(name, random_weights=True)
    assert first.random and first.weights["kind"] == "random" and first.weights["seed"] == 0
    assert first.model.num_classes == 400 and first.model.pretrained_cfg["tag"] == name.split(".")[1]
    state, again = first.model.state_dict(), second.model.state_dict()
    assert state.keys() == again.keys() and all(torch.equal(state[k], again[k]) for k in state)
    variances = [v for k, v in state.items() if k.endswith("running_var")]
    assert variances and not any(torch.equal(v, torch.ones_like(v)) for v in variances)


def test_predict_and_extract_refuse_the_flow_stream_on_rgb_video(run_cli, tmp_path):
    from video_samples import write_video

    write_video(tmp_path / "clip.mp4", 4, height=64, width=64)
    for command in (["predict", str(tmp_path / "clip.mp4")], ["extract", str(tmp_path / "clip.mp4"), "--out",
                                                               str(tmp_path / "out")]):
        result = run_cli(*command, "--model", "i3inception_v1_dm.k400_flow_piergiaj", "--random-weights")
        assert result.returncode != 0
        assert "model takes 2-channel input" in result.stderr and "--streams flow" in result.stderr
    assert not (tmp_path / "out").exists()


def test_the_ports_numerics_differ_as_the_readme_says():
    """The README's figures of what each port's numerics do to the same (seeded random) weights: BatchNorm eps 1e-3
    (piergiaj) against 1e-5 (hassony2), then TensorFlow's SAME padding against the static rule, at a size the
    strides do not divide; at a size they divide the two rules give the same numbers."""
    from conftest import relative_error

    from i3zoo.weights.verify import randomize_batchnorm

    torch.manual_seed(0)
    state = randomize_batchnorm(i3zoo.create_model(ARCH, num_classes=400), 1).state_dict()

    def features(padding, eps, clip):
        model = i3zoo.create_model(ARCH, num_classes=400, same_padding=padding, bn_eps=eps).eval()
        model.load_state_dict(state)
        with torch.no_grad():
            return model.forward_head(model.forward_features(clip), pre_logits=True)

    g = torch.Generator().manual_seed(2)
    odd, even = (2 * torch.rand(1, 3, *size, generator=g) - 1 for size in ((17, 225, 231), (16, 224, 224)))
    piergiaj, eps_only, hassony2 = (features(p, e, odd) for p, e in (("tf", 1e-3), ("tf", 1e-5), ("static", 1e-5)))
    readme = " ".join((Path(__file__).resolve().parents[1] / "README.md").read_text().split())
    eps_effect = f"{relative_error(eps_only, piergiaj):.1e}".replace("e-0", "e-")
    assert f"BatchNorm eps 1e-3 against 1e-5 changes the features by {eps_effect} relative" in readme
    assert f"the static padding rule changes them by a further {relative_error(hassony2, eps_only):.2f}" in readme
    assert torch.equal(features("tf", 1e-5, even), features("static", 1e-5, even))
