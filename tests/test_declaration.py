"""Each model is declared once: a row added to a family's table of variants reaches every way in.

The toy variant is a ResNet-18 under a new name, declared inside the test through the same function the family
files use, and undeclared afterwards: it must appear in ``i3zoo.list_models``, ``timm.create_model``,
``torch.hub.load(source="local")`` (whose entry points and help come from the registry), ``i3zoo list`` and a
model card, and construct, load inflated weights and pickle as a named class does.
"""

from __future__ import annotations

import importlib.util
import pickle
from pathlib import Path

import pytest
import timm
import torch

import i3zoo
from i3zoo.models import i3resnet
from i3zoo.models._declare import Variant, declare, undeclare
from i3zoo.registry import model_class
from i3zoo.weights.torchvision_imagenet import Torchvision2D

REPO = Path(__file__).resolve().parents[1]
TOY = Variant("i3resnet18_toy", "I3ResNet18Toy", "ResNet-18 declared by a test", Torchvision2D("resnet18", "ResNet-18"),
              dict(block="basic", block_counts=(2, 2, 2, 2)))


def _hubconf():
    """hubconf.py imported as torch.hub imports it: a fresh module from the file."""
    spec = importlib.util.spec_from_file_location("hubconf", REPO / "hubconf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def toy():
    names = declare(i3zoo.I3ResNet, [TOY], i3resnet.__name__)
    assert names == ["I3ResNet18Toy"]
    try:
        yield i3resnet.I3ResNet18Toy
    finally:
        undeclare(TOY.name)


def test_a_declared_variant_reaches_the_registry_timm_and_torch_hub(toy):
    assert TOY.name in i3zoo.list_models() and i3zoo.list_tags(TOY.name) == ["tv_in1k"]
    assert i3zoo.is_model(f"{TOY.name}.tv_in1k") and f"{TOY.name}.tv_in1k" in i3zoo.list_models(pretrained=True)
    assert model_class(TOY.name) is toy and toy.__module__ == "i3zoo.models.i3resnet"
    assert issubclass(toy, i3zoo.I3ResNet) and toy.network_2d.arch == toy.torchvision_arch == "resnet18"
    with torch.device("meta"):
        built = timm.create_model(TOY.name, num_classes=10)
        hub = torch.hub.load(str(REPO), TOY.name, source="local", num_classes=10)
    assert type(built) is toy and type(hub) is toy
    assert built.pretrained_cfg["tag"] == "tv_in1k" and built.pretrained_cfg["weights_source"] == "torchvision"
    # what torch.hub.list and torch.hub.help read (they take GitHub repositories only): hubconf's callables and
    # the entry point's docstring
    hubconf = _hubconf()
    assert TOY.name in [name for name in dir(hubconf) if callable(getattr(hubconf, name)) and name[0] != "_"]
    help_text = getattr(hubconf, TOY.name).__doc__
    params = sum(p.numel() for p in i3zoo.create_model(TOY.name).parameters())
    assert "I3ResNet18Toy: ResNet-18 declared by a test." in help_text and f"{params:,} parameters" in help_text


def test_a_declared_variant_is_listed_and_carded(toy, run_cli):
    from i3zoo.weights.cards import committed_card

    listed = run_cli("list", TOY.name)
    assert listed.returncode == 0, listed.stderr
    assert f"| `{TOY.name}` |" in listed.stdout and "`tv_in1k` (default)" in listed.stdout
    card = committed_card(f"{TOY.name}.tv_in1k")
    assert f"# {TOY.name}.tv_in1k" in card and "ResNet-18 inflated to 3D" in card
    assert "largest relative error (max |3D − 2D| / max |2D|) **≤ 1e-12**" in card  # measured for the card


def test_a_declared_class_fills_itself_subclasses_and_pickles(toy, checkpoint_2d, tmp_path):
    overlay = dict(file=str(checkpoint_2d("i3resnet18")))
    model = toy(pretrained=True, pretrained_cfg_overlay=overlay).eval()
    reference = i3zoo.I3ResNet18(pretrained=True, pretrained_cfg_overlay=overlay).eval()
    clip = torch.randn(1, 3, 4, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(model(clip), reference(clip))

    class Mine(toy):  # a user's subclass keeps the name, the tags and the loading
        pass

    assert Mine(pretrained=True, pretrained_cfg_overlay=overlay).pretrained_cfg["architecture"] == TOY.name
    copy = pickle.loads(pickle.dumps(model))
    assert type(copy) is toy and torch.equal(copy.conv1.weight, model.conv1.weight)


def test_undeclaring_removes_every_trace():
    declare(i3zoo.I3ResNet, [TOY], i3resnet.__name__)
    undeclare(TOY.name)
    assert TOY.name not in i3zoo.list_models() and not timm.is_model(TOY.name)
    assert not hasattr(i3resnet, "I3ResNet18Toy") and TOY.name not in i3resnet.default_cfgs
    assert "I3ResNet18Toy" not in i3resnet.__all__ and TOY.name not in i3resnet.__all__
    with pytest.raises(ValueError, match="unknown model 'i3resnet18_toy'"):
        i3zoo.create_model(TOY.name)


def test_a_declaration_is_checked():
    with pytest.raises(TypeError, match="I3ResNet has no architecture argument 'block_count'"):
        declare(i3zoo.I3ResNet, [Variant("i3resnet_typo", "I3ResNetTypo", "a typo",
                                         Torchvision2D("resnet18", "ResNet-18"), dict(block_count=(1, 1, 1, 1)))],
                i3resnet.__name__)
    with pytest.raises(ValueError, match="i3resnet50 is declared twice"):
        declare(i3zoo.I3ResNet, [Variant("i3resnet50", "I3ResNet50Again", "again",
                                         Torchvision2D("resnet50", "ResNet-50"))], i3resnet.__name__)
    assert "i3resnet_typo" not in i3zoo.list_models() and i3zoo.I3ResNet50.__name__ == "I3ResNet50"
