"""Model cards: one template per family (``card_templates/``), filled with measured facts.

``render_card`` writes the card of one ``arch.tag``: YAML front matter for the Hugging Face Hub
(``library_name: i3zoo``, license, tags, datasets, ``pipeline_tag: video-classification``, ``base_model``)
and the sections model details, usage, equivalence and citation. ``write_committed_cards`` regenerates the
cards in ``model_cards/`` (a test fails if the committed ones differ).
"""

from __future__ import annotations

import functools
import string
from importlib import resources
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

from ..facts import DESIGN_CLIP, count_gflops, model_facts
from ..registry import arch_tags, list_models, meta_model
from .pytorchvideo import PYTORCHVIDEO_KINETICS400

__all__ = ["render_card", "card_equivalence", "write_committed_cards", "base_model_id"]

# below this the measured relative error is float64 round-off; committed cards state the bound, not the
# last digits, which differ between CPUs
ROUNDOFF_BOUND = 1e-12

_INFLATION_RULES = {
    "center": "the centre temporal tap of every kernel holds the 2D kernel, the others are zero "
              "(Detect-and-Track, Girdhar et al. 2018); temporal padding is zeros",
    "mean": "every temporal tap holds the 2D kernel divided by the number of taps (I3D's replicate and "
            "rescale); temporal padding replicates the edge frames",
}


def base_model_id(arch: str, tag: str) -> str:
    """The Hub id of the 2D source (timm hosts torchvision's weights as ``timm/<arch>.<tag>``)."""
    from .verify import torchvision_arch_of

    return f"timm/{torchvision_arch_of(arch)}.{tag}"


def _front_matter(arch: str, tag: str, license: str, *, registered_source: bool, fine_tuned: bool = False) -> str:
    from huggingface_hub import ModelCardData

    family = _family(arch).removeprefix("i3")
    data = ModelCardData(
        library_name="i3zoo",
        license=license,
        tags=["video-classification", "i3d", "fine-tuned" if fine_tuned else "inflated", "timm", family, "pytorch"],
        # weights from some other 2D file claim neither torchvision's data set nor its model
        datasets=["imagenet-1k"] if registered_source else None,
        pipeline_tag="video-classification",
        base_model=base_model_id(arch, tag) if registered_source else None,
    )
    return f"---\n{data.to_yaml()}\n---"


def _family(arch: str) -> str:
    """The card template of ``arch``: ``i3resnet`` (ResNet, ResNeXt, Wide ResNet), ``i3densenet``, ``i3inception``."""
    if arch.startswith("i3densenet"):
        return "i3densenet"
    return "i3inception" if arch.startswith("i3inception") else "i3resnet"


#: torchvision's architecture names, as their papers write them
_TITLES = (("resnext", "ResNeXt-"), ("wide_resnet", "Wide ResNet-"), ("resnet", "ResNet-"),
           ("densenet", "DenseNet-"), ("googlenet", "GoogLeNet (Inception-v1)"))


def arch_title(torchvision_name: str) -> str:
    """``resnet50`` -> ``ResNet-50``, ``resnext101_32x8d`` -> ``ResNeXt-101 32x8d``, ``wide_resnet50_2`` ->
    ``Wide ResNet-50-2``, ``googlenet`` -> ``GoogLeNet (Inception-v1)``."""
    for prefix, title in _TITLES:
        if torchvision_name.startswith(prefix):
            rest = torchvision_name[len(prefix):]
            return title + (rest.replace("_", " ", 1) if prefix == "resnext" else rest.replace("_", "-"))
    return torchvision_name


#: the paper of a ResNet variant, cited after He et al. in its card
_VARIANT_CITATIONS = {
    "resnext": """
@inproceedings{xie2017aggregated,
  title={Aggregated Residual Transformations for Deep Neural Networks},
  author={Xie, Saining and Girshick, Ross and Doll{\\'a}r, Piotr and Tu, Zhuowen and He, Kaiming},
  booktitle={CVPR}, year={2017}
}""",
    "wide_resnet": """
@inproceedings{zagoruyko2016wide,
  title={Wide Residual Networks},
  author={Zagoruyko, Sergey and Komodakis, Nikos},
  booktitle={BMVC}, year={2016}
}""",
}


def is_registered_source(source_2d: Dict[str, Any], registered_url: str) -> bool:
    """Whether the 2D weights were the tag's own (torchvision's file): by URL, or by the hash in its name."""
    from .checkpoints import expected_hash_prefix, public_url

    kind, sha = source_2d.get("kind"), source_2d.get("sha256")
    prefix = expected_hash_prefix(registered_url)
    same_file = bool(sha and prefix and sha.startswith(prefix))
    if kind is None:  # the committed cards: the registered source by definition
        return True
    if kind == "url":
        return source_2d.get("url") == public_url(registered_url) or same_file
    return kind == "file" and same_file


def _equivalence_text(equivalence: Dict[str, Any], *, bound_only: bool) -> str:
    if not equivalence.get("measured"):
        return f"Not measured for these weights: {equivalence.get('why', 'unknown')}."
    rel = equivalence["max_rel"]
    shown = f"≤ {ROUNDOFF_BOUND:g}" if bound_only and rel <= ROUNDOFF_BOUND else f"{rel:.2e}"
    frames = " and ".join(str(t) for t in equivalence["frames"])
    return (
        f"Shown a boring video (one image repeated T times), this model gives the 2D network's "
        f"{equivalence['compared']} on the image. Measured by `i3zoo` in {equivalence['dtype']} on "
        f"{equivalence['input']}, T = {frames}, with {equivalence.get('weights', 'these weights')}: "
        f"largest relative error (max |3D − 2D| / max |2D|) **{shown}**."
    )


def render_card(
    model_id: str,
    *,
    inflation: str,
    num_classes: int,
    equivalence: Dict[str, Any],
    source_2d: Optional[Dict[str, Any]] = None,
    bound_only: bool = False,
) -> str:
    """The model card (README.md) of ``model_id`` = ``arch.tag``."""
    from timm.models import get_pretrained_cfg

    from .verify import torchvision_arch_of

    arch, tag = model_id.split(".", 1)
    cfg = get_pretrained_cfg(model_id)
    facts = model_facts(arch)
    torchvision_name = torchvision_arch_of(arch)
    title = arch_title(torchvision_name)
    source_2d = source_2d or {}
    sha = source_2d.get("sha256")
    if source_2d.get("kind") == "file":
        source_line = f"local file `{source_2d['name']}` (sha256 `{sha}`), given in place of `{cfg.url}`"
    elif source_2d.get("kind") == "state_dict":
        source_line = f"a state dict given in memory, in place of `{cfg.url}`"
    else:
        source_line = f"`{source_2d.get('url') or cfg.url}`" + (
            f" (sha256 `{sha}`)" if sha else " (sha256 prefix in the file name, checked on load)")
    if any(published.url == cfg.url for published in PYTORCHVIDEO_KINETICS400.values()):
        return _render_kinetics_card(model_id, cfg, num_classes=num_classes, source_line=source_line, title=title)
    registered = is_registered_source(source_2d, cfg.url)
    weights_name = (cfg.notes or [""])[0].removeprefix("2D source: torchvision ").split(" (")[0]
    if registered:
        source_description = f"torchvision's ImageNet-1k `{torchvision_name}` (`{weights_name}`)"
        license, license_text = cfg.license or "other", f"{cfg.license or 'other'} (the 2D source's)"
    else:
        source_description = (f"a 2D `{torchvision_name}` checkpoint given by the user, not torchvision's ImageNet-1k "
                              f"file (`{weights_name}`)")
        license, license_text = "other", "that of the 2D checkpoint it was inflated from (not known to i3zoo)"
    mt, mh, mw = facts.min_input_size
    guarantee = (
        "**Equivalence guarantee.** Shown a video whose frames all equal one image, the 3D model gives the 2D "
        f"model's output on that image, for any T ≥ {mt} and any frame size ≥ {mh}×{mw}."
        if num_classes == cfg.num_classes else
        f"The backbone is inflated from the 2D source; the {num_classes}-way classifier is new."
    )
    template = resources.files(__package__).joinpath(f"card_templates/{_family(arch)}.md").read_text()
    model = meta_model(arch)
    design = getattr(model, "design", None)
    return string.Template(template).substitute(
        design=design.summary if design is not None else "",
        block={"basic": "BasicBlock", "bottleneck": "Bottleneck"}.get(getattr(model, "block", ""), ""),
        variant_citation=next((c for prefix, c in _VARIANT_CITATIONS.items() if torchvision_name.startswith(prefix)),
                              ""),
        front_matter=_front_matter(arch, tag, license, registered_source=registered),
        name=model_id,
        arch=arch,
        arch_title=title,
        source_description=source_description,
        params=f"{facts.params / 1e6:.1f} M",
        gflops=f"{facts.gflops:.1f}",
        min_input=f"{mt} × {mh} × {mw}",
        temporal_reduction=facts.temporal_reduction,
        spatial_reduction=facts.spatial_reduction,
        num_classes=num_classes,
        inflation=inflation,
        inflation_rule=_INFLATION_RULES[inflation],
        source_line=source_line,
        license_text=license_text,
        guarantee=guarantee,
        model_id=model_id,
        hub_tag_arg=f', pretrained_cfg="{tag}"' if tag != arch_tags(arch)[0] else "",
        equivalence=_equivalence_text(equivalence, bound_only=bound_only),
    )


def render_finetuned_card(model_id: str, *, inflation: str, num_classes: int, params: int,
                          label_names: Optional[List[str]], training: Dict[str, Any]) -> str:
    """The card of weights trained by ``i3zoo train`` from ``model_id`` = ``arch.tag``: what they started from and
    what they were trained on (``training``: ``start``, ``train``, ``epochs`` and ``validation``, as sentences), and
    no claim of ImageNet weights or of the boring-video equivalence, which fine-tuning ends."""
    from .verify import torchvision_arch_of

    arch, tag = model_id.split(".", 1)
    facts = model_facts(arch)
    title = arch_title(torchvision_arch_of(arch))
    design = getattr(meta_model(arch), "design", None)
    names = label_names or []
    preview = ", ".join(f"`{name}`" for name in names[:8]) + (f", ... ({len(names)} in all)" if len(names) > 8 else "")
    mt, mh, mw = facts.min_input_size
    template = resources.files(__package__).joinpath("card_templates/finetuned.md").read_text()
    return string.Template(template).substitute(
        front_matter=_front_matter(arch, tag, "other", registered_source=False, fine_tuned=True),
        title=f"{arch}, fine-tuned ({num_classes} classes)",
        arch_title=title, start=training["start"], train=training["train"], epochs=training["epochs"],
        validation=training["validation"], num_classes=num_classes, label_preview=preview or "unnamed",
        arch=arch, design=design.summary if design is not None else title, params=f"{params / 1e6:.1f} M",
        gflops=f"{facts.gflops:.1f}", min_input=f"{mt} × {mh} × {mw}", temporal_reduction=facts.temporal_reduction,
        spatial_reduction=facts.spatial_reduction, inflation=inflation,
    )


def _render_kinetics_card(model_id: str, cfg, *, num_classes: int, source_line: str, title: str) -> str:
    """The card of PyTorchVideo's Kinetics-400 weights: trained 3D weights, converted, not inflated."""
    from huggingface_hub import ModelCardData

    arch, tag = model_id.split(".", 1)
    model = meta_model(model_id)
    published = PYTORCHVIDEO_KINETICS400[model.temporal]
    front = ModelCardData(
        library_name="i3zoo", license=cfg.license, datasets=["kinetics-400"], pipeline_tag="video-classification",
        tags=["video-classification", "kinetics-400", "pytorchvideo", "timm", "resnet", "pytorch"],
    )
    mt, mh, mw = model.min_input_size
    t, h, w = DESIGN_CLIP
    template = resources.files(__package__).joinpath("card_templates/i3resnet_k400.md").read_text()
    return string.Template(template).substitute(
        front_matter=f"---\n{front.to_yaml()}\n---",
        name=model_id, arch=arch, tag=tag, model_id=model_id, arch_title=title,
        design_title=f"PyTorchVideo's {model.temporal} design", design=model.design.summary,
        builder=published.builder, top1=published.top1,
        params=f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f} M (with the 400-way Kinetics classifier)",
        clip=f"{t}×{h}×{w}", gflops=f"{count_gflops(model, DESIGN_CLIP):.1f}",
        clip_len=published.clip_len, frame_interval=published.frame_interval,
        min_input=f"{mt} × {mh} × {mw}", temporal_reduction=model.temporal_reduction,
        spatial_reduction=model.spatial_reduction, num_classes=num_classes,
        classes="400: Kinetics-400, names in `model.pretrained_cfg[\"label_names\"]`" if num_classes == 400 else
                f"{num_classes} (a new classifier on the Kinetics-400 backbone)",
        source_line=source_line.replace(" (sha256 prefix in the file name, checked on load)",
                                        " (no hash in the name: its sha256 is recorded at the first download)"),
        license=cfg.license,
        equivalence=(
            f"`tests/test_presets.py` builds PyTorchVideo's own `{published.builder}` (pytorchvideo 0.1.5) with "
            "seeded random weights and randomized BatchNorm statistics, saves it as a `.pyth` checkpoint, loads "
            f"that into `{arch}` through i3zoo's converter and compares the outputs on the same clip: relative "
            "error ≤ 1e-5 in float32 (at 8×224×224) and ≤ 1e-10 in float64."),
    )


def card_equivalence(model_id: str, inflation: str = "center") -> Dict[str, Any]:
    """The equivalence figure for a committed card: seeded random 2D weights (no download), float64 model."""
    return dict(_card_equivalence(model_id.split(".", 1)[0], inflation))


@functools.lru_cache(maxsize=None)
def _card_equivalence(arch: str, inflation: str) -> Dict[str, Any]:
    # the seeded weights depend on the architecture only, so the tags of one architecture share the figure
    from ..registry import create_model
    from .verify import default_dtype, measure_equivalence, seeded_2d_state_dict, torchvision_arch_of

    state_dict = seeded_2d_state_dict(torchvision_arch_of(arch))
    with default_dtype(torch.float64):  # inflate in float64: the figure is then round-off only
        model = create_model(arch, pretrained=True, inflation=inflation,
                             pretrained_cfg_overlay=dict(state_dict=state_dict))
    result = measure_equivalence(model, state_dict, size=32)  # 32x32: the figure is round-off at any size
    result["weights"] = "seeded random 2D weights with randomized BatchNorm statistics (the card is generated offline)"
    return result


def committed_card(model_id: str) -> str:
    """The card committed in ``model_cards/`` for a registered ``arch.tag`` (default inflation, 1000 classes)."""
    from timm.models import get_pretrained_cfg

    if get_pretrained_cfg(model_id).num_classes != 1000:  # PyTorchVideo's Kinetics-400 weights: nothing inflated
        return render_card(model_id, inflation="center", num_classes=get_pretrained_cfg(model_id).num_classes,
                           equivalence={"measured": False, "why": "trained 3D weights, not inflated"})
    return render_card(model_id, inflation="center", num_classes=1000, equivalence=card_equivalence(model_id),
                       bound_only=True)


def write_committed_cards(folder: Path) -> List[Path]:
    """(Re)write ``folder/<arch.tag>.md`` for every registered tag; returns the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for model_id in list_models(pretrained=True):
        path = folder / f"{model_id}.md"
        path.write_text(committed_card(model_id), encoding="utf-8")
        paths.append(path)
    return paths
