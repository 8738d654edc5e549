"""Model cards: one template per family (``card_templates/``), filled with measured facts.

:func:`render_card` writes the card of one ``arch.tag`` through the tag's weight source (``sources.py``): each
source renders its own kind of card (inflated ImageNet weights, converted Kinetics weights) from the pieces here:
YAML front matter for the Hugging Face Hub (``library_name: i3zoo``, license, tags, datasets,
``pipeline_tag: video-classification``, ``base_model``), the equivalence text and the inflation rules. The
template of a family is named by its model class (``card_template``); the 2D network's title and citation come
with its declaration. ``write_committed_cards`` regenerates the cards in ``model_cards/`` (a test fails if the
committed ones differ).
"""

from __future__ import annotations

import functools
import string
from importlib import resources
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import torch

from ..facts import model_facts
from ..registry import list_models, meta_model, model_class
from ..text import card_text
from .sources import source_of_tag

__all__ = ["render_card", "render_finetuned_card", "render_inflated_card", "card_equivalence", "committed_card",
           "write_committed_cards",
           "base_model_id", "front_matter", "equivalence_text", "read_template"]

# below this the measured relative error is float64 round-off; committed cards state the bound, not the
# last digits, which differ between CPUs
ROUNDOFF_BOUND = 1e-12

INFLATION_RULES = {
    "center": "the centre temporal tap of every kernel holds the 2D kernel, the others are zero "
              "(Detect-and-Track, Girdhar et al. 2018); temporal padding is zeros",
    "mean": "every temporal tap holds the 2D kernel divided by the number of taps (I3D's replicate and "
            "rescale); temporal padding replicates the edge frames",
}


def read_template(name: str) -> str:
    """The text of ``card_templates/<name>.md``."""
    return resources.files(__package__).joinpath(f"card_templates/{name}.md").read_text()


def base_model_id(arch: str, tag: str) -> str:
    """The Hub id of the 2D source (timm hosts torchvision's weights as ``timm/<arch>.<tag>``)."""
    return f"timm/{model_class(arch).torchvision_arch}.{tag}"


def front_matter(arch: str, tag: str, license: str, *, registered_source: bool, fine_tuned: bool = False,
                 datasets: Optional[Sequence[str]] = None, tags: Optional[Sequence[str]] = None) -> str:
    """YAML front matter of a card. By default that of inflated ImageNet weights: weights from some other 2D file
    claim neither torchvision's data set nor its model."""
    from huggingface_hub import ModelCardData

    family = model_class(arch).card_template.removeprefix("i3")
    data = ModelCardData(
        library_name="i3zoo",
        license=license,
        tags=list(tags) if tags is not None else [
            "video-classification", "i3d", "fine-tuned" if fine_tuned else "inflated", "timm", family, "pytorch"],
        datasets=list(datasets) if datasets is not None else (["imagenet-1k"] if registered_source else None),
        pipeline_tag="video-classification",
        base_model=base_model_id(arch, tag) if registered_source and datasets is None else None,
    )
    return f"---\n{data.to_yaml()}\n---"


def is_registered_source(source_2d: Dict[str, Any], registered_url: str) -> bool:
    """Whether the 2D weights were the tag's own file: read from the tag's URL, or a file with the hash in its name."""
    from .checkpoints import expected_hash_prefix, public_url

    kind, sha = source_2d.get("kind"), source_2d.get("sha256")
    prefix = expected_hash_prefix(registered_url)
    same_file = bool(sha and prefix and sha.startswith(prefix))
    if kind is None:  # the committed cards: the registered source by definition
        return True
    if kind == "url":
        return source_2d.get("url") == public_url(registered_url) or same_file
    return kind == "file" and same_file


def inflated_source_line(source_2d: Dict[str, Any], registered_url: str) -> str:
    """The card's line on where the weights came from."""
    sha = source_2d.get("sha256")
    if source_2d.get("kind") == "file":
        return f"local file `{source_2d['name']}` (sha256 `{sha}`), given in place of `{registered_url}`"
    if source_2d.get("kind") == "state_dict":
        return f"a state dict given in memory, in place of `{registered_url}`"
    return f"`{source_2d.get('url') or registered_url}`" + (
        f" (sha256 `{sha}`)" if sha else " (sha256 prefix in the file name, checked on load)")


def guarantee_text(min_input_size: Sequence[int], same_head: bool, num_classes: int) -> str:
    mt, mh, mw = min_input_size
    if not same_head:
        return f"The backbone is inflated from the 2D source; the {num_classes}-way classifier is new."
    return ("**Equivalence guarantee.** Shown a video whose frames all equal one image, the 3D model gives the 2D "
            f"model's output on that image, for any T ≥ {mt} and any frame size ≥ {mh}×{mw}.")


def equivalence_text(equivalence: Dict[str, Any], *, bound_only: bool) -> str:
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
    """The model card (README.md) of ``model_id`` = ``arch.tag``, written by the tag's weight source."""
    return source_of_tag(model_id).render_card(model_id, inflation=inflation, num_classes=num_classes,
                                            equivalence=equivalence, source_2d=source_2d, bound_only=bound_only)


def render_finetuned_card(model_id: str, *, inflation: str, num_classes: int, params: int,
                          label_names: Optional[List[str]], training: Dict[str, Any]) -> str:
    """The card of weights trained by ``i3zoo train`` from ``model_id`` = ``arch.tag``: what they started from and
    what they were trained on (``training``: ``start``, ``train``, ``epochs`` and ``validation``, as sentences), and
    no claim of ImageNet weights or of the boring-video equivalence, which fine-tuning ends."""
    arch, tag = model_id.split(".", 1)
    facts = model_facts(arch)
    model = meta_model(arch)
    title = model.network_2d.title
    design = getattr(model, "design", None)
    names = label_names or []
    # names from a user's data: inert in the card (no markdown, HTML or control characters)
    preview = ", ".join(card_text(name) for name in names[:8]) + (
        f", ... ({len(names)} in all)" if len(names) > 8 else "")
    mt, mh, mw = facts.min_input_size
    return string.Template(read_template("finetuned")).substitute(
        front_matter=front_matter(arch, tag, "other", registered_source=False, fine_tuned=True),
        title=f"{arch}, fine-tuned ({num_classes} classes)",
        arch_title=title, start=training["start"], train=training["train"], epochs=training["epochs"],
        validation=training["validation"], num_classes=num_classes, label_preview=preview or "unnamed",
        arch=arch, design=design.summary if design is not None else title, params=f"{params / 1e6:.1f} M",
        gflops=f"{facts.gflops:.1f}", min_input=f"{mt} × {mh} × {mw}", temporal_reduction=facts.temporal_reduction,
        spatial_reduction=facts.spatial_reduction, inflation=inflation,
    )


def card_equivalence(model_id: str, inflation: str = "center") -> Dict[str, Any]:
    """The equivalence figure for a committed card: seeded random 2D weights (no download), float64 model."""
    return dict(_card_equivalence(model_id.split(".", 1)[0], inflation))


@functools.lru_cache(maxsize=None)
def _card_equivalence(arch: str, inflation: str) -> Dict[str, Any]:
    # the seeded weights depend on the architecture only, so the tags of one architecture share the figure
    from ..registry import create_model
    from .verify import default_dtype, measure_equivalence, seeded_2d_state_dict

    state_dict = seeded_2d_state_dict(meta_model(arch).network_2d)
    with default_dtype(torch.float64):  # inflate in float64: the figure is then round-off only
        model = create_model(arch, pretrained=True, inflation=inflation,
                             pretrained_cfg_overlay=dict(state_dict=state_dict))
    result = measure_equivalence(model, state_dict, size=32)  # 32x32: the figure is round-off at any size
    result["weights"] = "seeded random 2D weights with randomized BatchNorm statistics (the card is generated offline)"
    return result


def committed_card(model_id: str) -> str:
    """The card committed in ``model_cards/`` for a registered ``arch.tag`` (default inflation, 1000 classes)."""
    from timm.models import get_pretrained_cfg

    num_classes = get_pretrained_cfg(model_id).num_classes
    if not getattr(source_of_tag(model_id), "inflated", False):  # trained 3D weights (Kinetics): nothing inflated
        return render_card(model_id, inflation="center", num_classes=num_classes,
                           equivalence={"measured": False, "why": "trained 3D weights, not inflated"})
    return render_card(model_id, inflation="center", num_classes=num_classes, equivalence=card_equivalence(model_id),
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


def render_inflated_card(model: Any, source_2d: Dict[str, Any], training: Optional[Dict[str, Any]] = None) -> str:
    """The card of a 2D network inflated on the fly (``inflate:timm/NAME``): its source, design and facts;
    ``base_model`` names the 2D weights when they are timm's Hub weights. ``training`` as
    :func:`render_finetuned_card`'s."""
    from huggingface_hub import ModelCardData

    library, _, name = model.source.partition("/")
    pretrained = bool(source_2d.get("pretrained"))
    cfg = model.pretrained_cfg
    base = f"timm/{name}" if library == "timm" and pretrained and "." in name else None
    data = ModelCardData(library_name="i3zoo", license="other", pipeline_tag="video-classification",
                         tags=["video-classification", "inflated", library, model.design.name, "pytorch"],
                         base_model=base)
    trained = ""
    if training is not None:
        trained = ("## Training\n\nFine-tuned on video with `i3zoo train` after inflation, so the boring-video "
                   "equivalence with the 2D network no longer holds.\n\n| | |\n|---|---|\n"
                   + "".join(f"| {k} | {training[k]} |\n" for k in ("start", "train", "epochs", "validation")) + "\n")
    mt, mh, mw = model.min_input_size
    what = (f"`{model.source}` inflated to a video network" + (", then fine-tuned on video." if training else
            ": on a clip of one repeated frame it gives the 2D network's outputs (float round-off)."))
    return string.Template(read_template("inflated")).substitute(
        front_matter=f"---\n{data.to_yaml()}\n---", title=f"inflate:{model.source} ({model.design.name})",
        what=what, source=model.source, library=library,
        weights=f"weights `{source_2d.get('name')}`" if pretrained else "random 2D weights (no pretrained ones)",
        design=model.design.name, design_summary=model.design.summary, inflation=model.inflation,
        time_layers=len(model.time_layers), time_pools=len(model.time_pools),
        params=f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f} M", in_chans=model.in_chans,
        mean=tuple(round(v, 4) for v in cfg["mean"]), std=tuple(round(v, 4) for v in cfg["std"]),
        min_input=f"{mt} × {mh} × {mw}", temporal_reduction=model.temporal_reduction,
        spatial_reduction=model.spatial_reduction, num_classes=model.num_classes, training=trained)
