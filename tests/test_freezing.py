"""frozen_stages and norm_eval (MMAction2's conventions) on the models themselves, outside any trainer."""

import pytest
import torch
from conftest import ALL_MODELS
from torch import nn

import i3zoo


@pytest.mark.parametrize("name", ALL_MODELS)
def test_stage_modules_hold_every_backbone_parameter_once(name):
    with torch.device("meta"):
        model = i3zoo.create_model(name)
    grouped = [id(p) for group in model.stage_modules() for module in group for p in module.parameters()]
    head = {id(p) for p in model.get_classifier().parameters()}
    assert len(grouped) == len(set(grouped))
    assert set(grouped) == {id(p) for p in model.parameters()} - head


def _batchnorms(modules):
    return [m for module in modules for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@pytest.mark.parametrize("name", ["i3resnet50", "i3densenet121"])
def test_frozen_stages_get_no_gradient_and_keep_their_statistics(name):
    torch.manual_seed(0)
    model = i3zoo.create_model(name, num_classes=4, frozen_stages=1).train()
    groups = model.stage_modules()
    frozen, live = [m for g in groups[:2] for m in g], [m for g in groups[2:] for m in g]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    t, h, w = model.min_input_size
    loss = model(torch.randn(2, 3, t, h, w)).logsumexp(1).sum()
    loss.backward()
    frozen_params = [p for m in frozen for p in m.parameters()]
    assert frozen_params and all(not p.requires_grad and p.grad is None for p in frozen_params)
    assert all(p.grad is not None for m in live for p in m.parameters())
    for bn in _batchnorms(frozen):
        assert not bn.training
    after = model.state_dict()
    frozen_keys = [k for k in before if any(k.startswith(prefix) for prefix in _prefixes(model, frozen))]
    assert frozen_keys and all(torch.equal(before[k], after[k]) for k in frozen_keys)
    moved = [k for k in before if k.endswith("running_mean") and not torch.equal(before[k], after[k])]
    assert moved, "the live stages' BatchNorms should have updated their statistics"
    model.train()  # a later train() keeps the frozen stages in eval mode
    assert not any(bn.training for bn in _batchnorms(frozen))
    assert all(bn.training for bn in _batchnorms(live))


def _prefixes(model, modules):
    names = {id(m): n for n, m in model.named_modules()}
    return [names[id(m)] + "." for m in modules]


def test_norm_eval_keeps_every_running_statistic():
    torch.manual_seed(0)
    model = i3zoo.create_model("i3resnet50", num_classes=4, norm_eval=True).train()
    before = {k: v.clone() for k, v in model.state_dict().items() if "running" in k or "num_batches" in k}
    model(torch.randn(2, 3, 2, 32, 32)).sum().backward()
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert model.training and model.fc.training
    assert model.layer4[0].bn1.weight.grad is not None  # affine parameters still learn


@pytest.mark.parametrize("value", [-2, 5, 1.0, True, "1"])
def test_frozen_stages_out_of_range_is_refused(value):
    with pytest.raises(ValueError, match=r"frozen_stages must be an integer from -1 .* to 4"):
        i3zoo.create_model("i3resnet50", frozen_stages=value)


def test_norm_eval_must_be_a_bool():
    with pytest.raises(ValueError, match="norm_eval must be True or False"):
        i3zoo.create_model("i3resnet50", norm_eval="yes")
