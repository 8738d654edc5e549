"""The README's hand-written layer tables (the seed I3ResNet's and the I3DenseNets' kernels, strides and paddings)
say what the models are: every row is read back and compared with every layer it names, and every convolution
and pooling layer of the models is named by some row."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import pytest
from torch import nn

from i3zoo.registry import meta_model

README = Path(__file__).resolve().parents[1] / "README.md"

Selector = Callable[[nn.Module], List[Tuple[nn.Module, int]]]  # a row's layers, each with its block's stride s


def _bottlenecks(model: nn.Module):
    return [block for stage in (model.layer1, model.layer2, model.layer3, model.layer4) for block in stage]


def _stride(block) -> int:
    return block.conv2.stride[-1]


RESNET_ROWS: Dict[str, List[Selector]] = {
    "conv1": [lambda m: [(m.conv1, 1)]],
    "maxpool": [lambda m: [(m.maxpool, 1)]],
    "bottleneck conv1, conv3": [lambda m: [(conv, 1) for b in _bottlenecks(m) for conv in (b.conv1, b.conv3)]],
    "bottleneck conv2": [lambda m: [(b.conv2, _stride(b)) for b in _bottlenecks(m)]],
    "downsample": [lambda m: [(b.downsample[0], _stride(b)) for b in _bottlenecks(m) if b.downsample is not None]],
}


def _named(model: nn.Module, pattern: str):
    return [(module, 1) for name, module in model.named_modules() if re.fullmatch(pattern, name)]


DENSENET_ROWS: Dict[str, List[Selector]] = {
    "conv0": [lambda m: _named(m, r"features\.conv0")],
    "pool0 (max)": [lambda m: _named(m, r"features\.pool0")],
    "dense layer conv1 / conv2": [lambda m: _named(m, r".*denselayer\d+\.conv1"),
                                  lambda m: _named(m, r".*denselayer\d+\.conv2")],
    "transition conv / pool (avg)": [lambda m: _named(m, r".*transition\d\.conv"),
                                     lambda m: _named(m, r".*transition\d\.pool")],
}


def _table(header: str) -> Dict[str, List[str]]:
    """Rows of the README table whose header row starts with ``header``: name -> cells."""
    lines = README.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {header} |"))
    rows = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    return rows


def _triple(text: str, s: int) -> Tuple[int, int, int]:
    """``3×7×7`` / ``1,2,2`` / ``s,s,s`` / ``1`` (all three) as a (t, h, w) triple."""
    values = [s if v == "s" else int(v) for v in re.split(r"[×,]", text)]
    return tuple(values * 3) if len(values) == 1 else tuple(values)


@pytest.mark.parametrize("header, rows, models", [
    ("I3ResNet, `seed`", RESNET_ROWS, ("i3resnet50", "i3resnet101", "i3resnet152")),
    ("I3DenseNet", DENSENET_ROWS, ("i3densenet121", "i3densenet161", "i3densenet169", "i3densenet201")),
])
def test_readme_layer_table_is_the_models(header, rows, models):
    table = _table(header)
    assert sorted(table) == sorted(rows)
    for name in models:
        model = meta_model(name)
        covered = set()
        for row, selectors in rows.items():
            kernels, strides, paddings = ([part.strip() for part in cell.split(" / ")] for cell in table[row])
            for k, select in enumerate(selectors):
                layers = select(model)
                assert layers, (name, row)
                for module, s in layers:
                    pick = lambda parts, k=k: parts[k] if len(parts) > 1 else parts[0]  # noqa: E731
                    got = tuple(module.kernel_size), tuple(module.stride), tuple(module.padding)
                    expected = tuple(_triple(pick(cells), s) for cells in (kernels, strides, paddings))
                    assert got == expected, (name, row, k)
                    if "(max)" in row or ("(avg)" in row and k == 1):
                        kind = nn.MaxPool3d if "(max)" in row else nn.AvgPool3d
                        assert isinstance(module, kind), (name, row)
                    covered.add(id(module))
        every = {id(m) for m in model.modules() if hasattr(m, "kernel_size")}
        assert covered == every, f"{name}: layers no row of the README table names"
