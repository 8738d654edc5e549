"""Which 2D networks ``i3zoo.inflate`` turns into exact video models: one architecture per timm model family file
and every torchvision classification CNN, inflated in float64 with random weights and randomized BatchNorm
statistics.

For each network (the smallest by parameter count, read on the meta device, of the four shortest names of its
family file): the boring-video
equivalence in both inflation modes (the ``i3d`` design, a clip of 2 frames of one random image, against the 2D
network on that image; largest relative error of the two), and whether the design mixes time (in ``mean`` mode,
since a centre inflation is per frame until trained: a clip whose frames are permuted gives other logits). A
network is "exact" below 1e-10; "per-frame" where no temporal kernel or pool found a place (attention networks:
only a convolutional patch embedding, if any, sees time). A family is convolutional when its network has more than
one ``nn.Conv2d``. Writes ``benchmarks/coverage_results/timm-<version>/coverage.{json,md}``;
``scripts/update_readme.py`` copies the table into README.md, and ``tests/test_inflate_any.py`` re-runs a sample
of rows against the committed file.

    python -m benchmarks.coverage              # every family (about half an hour on 2 cores)
    python -m benchmarks.coverage --only resnet convnext   # some families, printed, nothing written
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import sys
import traceback
from pathlib import Path
from typing import Dict, List, Optional

import timm
import torch
import torchvision
from torch import nn

import i3zoo

RESULTS = Path(__file__).resolve().parent / "coverage_results"
#: below this relative error a network is exact (float64 round-off is ~1e-15)
EXACT = 1e-10
#: timm families left out of the walk: test networks and ones with no image classifier
SKIPPED = ("_efficientnet_blocks", "_features", "_builder", "_registry", "_hub", "_helpers",
           "i3resnet", "i3densenet", "i3inception", "inflated")  # i3zoo's own, registered in timm


def randomized(net: nn.Module, seed: int = 0) -> nn.Module:
    generator = torch.Generator().manual_seed(seed)
    for module in net.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.running_mean is not None:
            module.running_mean.uniform_(-0.5, 0.5, generator=generator)
            module.running_var.uniform_(0.5, 2.0, generator=generator)
            if module.weight is not None:
                module.weight.data.uniform_(0.5, 1.5, generator=generator)
                module.bias.data.uniform_(-0.2, 0.2, generator=generator)
    return net.eval()


def smallest(names: List[str]) -> Optional[str]:
    """The name with the fewest parameters (counted on the meta device: nothing is allocated)."""
    sizes = {}
    for name in names:
        if name.startswith("test_"):
            continue
        try:
            with torch.device("meta"):
                sizes[name] = sum(p.numel() for p in timm.create_model(name).parameters())
        except Exception:  # a network that cannot be built plainly is not a sample
            continue
    return min(sizes, key=sizes.get) if sizes else None


def timm_samples() -> Dict[str, str]:
    """{family file: its smallest architecture}."""
    samples = {}
    for module in sorted(timm.list_modules()):
        if module in SKIPPED or module.startswith("_"):
            continue
        # the smallest of the shortest names (base and tiny variants): building every one, even on the meta
        # device, takes longer than the whole check
        name = smallest(sorted(timm.list_models(module=module), key=len)[:4])
        if name:
            samples[module] = name
    return samples


def input_size(net: nn.Module) -> int:
    """The smallest of 32, 64, 96, 128, 160, 224 (or the fixed size) at which the 2D network runs: patch sizes,
    windows and Inception's stems each want their own."""
    cfg = getattr(net, "pretrained_cfg", None) or {}
    stride = max((f["reduction"] for f in getattr(net, "feature_info", None) or [] if isinstance(f, dict)),
                 default=1)  # the inflated network's smallest frame (its total stride)
    sizes = [cfg["input_size"][-1]] if cfg.get("fixed_input_size") else [
        s for s in (32, 64, 96, 128, 160, 224) if s >= stride]
    for size in sizes:
        try:
            with torch.no_grad():
                net(torch.zeros(1, 3, size, size, dtype=torch.float64))
            return size
        except Exception:  # too small for this network: the next size
            continue
    return sizes[-1]


def check(net: nn.Module) -> Dict:
    """The equivalence in both modes and the time mixing of one 2D network (float64, eval mode)."""
    size = input_size(net)
    images = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    convs = sum(isinstance(m, nn.Conv2d) for m in net.modules())
    with torch.no_grad():
        reference = net(images)
        if not torch.isfinite(reference).all():
            raise FloatingPointError("the 2D network itself gives non-finite logits with random weights")
        errors, mixes = [], False
        for inflation in ("center", "mean"):
            model = i3zoo.inflate(copy.deepcopy(net), "i3d", inflation).eval()
            frames = max(2, model.min_input_size[0])
            clip = images.unsqueeze(2).expand(-1, -1, frames, -1, -1)
            out = model(clip)
            errors.append(((out - reference).abs().max() / reference.abs().max()).item())
            if inflation == "mean" and (model.time_layers or model.time_pools):
                moving = torch.randn(1, 3, 4 * frames, size, size, generator=torch.Generator().manual_seed(2),
                                     dtype=torch.float64)
                shuffled = moving[:, :, torch.randperm(4 * frames, generator=torch.Generator().manual_seed(3))]
                mixes = bool((model(moving) - model(shuffled)).abs().max() > 1e-6 * model(moving).abs().max())
    return dict(error=max(errors), exact=max(errors) < EXACT, time="time-mixing" if mixes else "per-frame",
                convolutional=convs > 1, size=size)


def run(name: str, build) -> Dict:
    row = dict(architecture=name)
    try:
        torch.manual_seed(0)
        previous = torch.get_default_dtype()
        torch.set_default_dtype(torch.float64)
        try:
            net = randomized(build())
        finally:
            torch.set_default_dtype(previous)
        row.update(check(net))
    except Exception as e:  # the row says why
        last = traceback.extract_tb(e.__traceback__)[-1]
        message = (str(e).splitlines() or [""])[0][:160]
        row.update(exact=False, error=None, time="", why=f"{type(e).__name__}: {message} "
                                                         f"({Path(last.filename).name}:{last.lineno})")
    return row


def render_markdown(result: Dict) -> str:
    rows = result["rows"]
    conv = [r for r in rows if r.get("convolutional", True) and r["library"] == "timm"]
    exact = [r for r in conv if r["exact"]]
    lines = [f"timm {result['timm']}, torchvision {result['torchvision']}, torch {result['torch']}; {result['date']}. "
             f"**{len(exact)} of {len(conv)} timm convolutional families exact** "
             f"({100 * len(exact) / max(len(conv), 1):.0f}%), float64, `i3d` design, both inflation modes.", "",
             "| library | family | example | exact | largest relative error | time | why not |",
             "|---|---|---|:-:|---:|---|---|"]
    for r in rows:
        error = f"{r['error']:.0e}" if r.get("error") is not None else "—"
        if r.get("error") is not None and r["error"] != r["error"]:  # NaN: the 2D logits were finite (checked)
            r = dict(r, why="non-finite outputs from the inflated network where the 2D network's are finite")
        kind = r.get("time") or "—"
        if not r.get("convolutional", True):
            kind += " (attention)"
        lines.append(f"| {r['library']} | {r['family']} | `{r['architecture']}` | {'yes' if r['exact'] else 'no'} | "
                     f"{error} | {kind} | {r.get('why', '')} |")
    return "\n".join(lines)


def torchvision_samples() -> Dict[str, str]:
    """{torchvision family file: its shortest-named (smallest) classification model}."""
    samples: Dict[str, List[str]] = {}
    for name in torchvision.models.list_models(module=torchvision.models):
        builder = torchvision.models.get_model_builder(name)
        family = builder.__module__.rsplit(".", 1)[-1]
        samples.setdefault(family, [])
        samples[family].append(name)
    return {family: sorted(names, key=len)[0] for family, names in samples.items()}


def _build(row: Dict):
    if row["library"] == "timm":
        return lambda: timm.create_model(row["architecture"])
    return lambda: torchvision.models.get_model(row["architecture"], weights=None)


def _write(result: Dict) -> None:
    out = RESULTS / f"timm-{timm.__version__}"
    out.mkdir(parents=True, exist_ok=True)
    (out / "coverage.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / "coverage.md").write_text(render_markdown(result) + "\n")
    print(render_markdown(result))


def again() -> int:
    """Re-run the committed rows that are not exact (and drop i3zoo's own families), keeping the others."""
    result = json.loads((RESULTS / f"timm-{timm.__version__}" / "coverage.json").read_text())
    rows = []
    for row in result["rows"]:
        if row["family"] in SKIPPED:
            continue
        if not row["exact"]:
            row = dict(library=row["library"], family=row["family"], **run(row["architecture"], _build(row)))
            print(row, flush=True)
        rows.append(row)
    _write(dict(result, rows=rows, date=datetime.date.today().isoformat()))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="timm family files (module names) to run; nothing is written")
    parser.add_argument("--again", action="store_true", help="re-run only the rows of the committed file that are "
                                                             "not exact (after a fix), keeping the others")
    args = parser.parse_args(argv)
    if args.again:
        return again()
    samples = timm_samples() if not args.only else {m: smallest(sorted(timm.list_models(module=m), key=len)[:4])
                                                    for m in args.only}
    rows = []
    for family, name in samples.items():
        rows.append(dict(library="timm", family=family, **run(name, lambda n=name: timm.create_model(n))))
        print(rows[-1], flush=True)
    if not args.only:
        for family, name in torchvision_samples().items():
            rows.append(dict(library="torchvision", family=family, **run(
                name, lambda n=name: torchvision.models.get_model(n, weights=None))))
            print(rows[-1], flush=True)
    result = dict(timm=timm.__version__, torchvision=torchvision.__version__, torch=torch.__version__,
                  date=datetime.date.today().isoformat(), rows=rows)
    if args.only:
        print(render_markdown(result))
        return 0
    _write(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
