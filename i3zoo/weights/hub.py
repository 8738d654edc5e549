"""Pre-inflated weights: ``save_pretrained`` and ``push_to_hub`` (``preinflated.py`` reads them back).

A saved variant is a folder in timm's Hugging Face layout: ``model.safetensors`` (never a pickle), a
timm-layout ``config.json`` (written by timm's own ``save_config_for_hf``) with i3zoo's video facts under a
top-level ``"i3zoo"`` key, and ``README.md``, the model card. ``create_model("hf-hub:org/name[@rev]")`` and
``create_model("local-dir:PATH")`` load such a folder (timm parses the name and config; i3zoo checks the
weights' sha256 and loads them strictly).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from torch import nn

from .checkpoints import CheckpointError, sha256_of
from .config import CARD_NAME, CONFIG_NAME, INFLATED_ARCH, WEIGHTS_NAME

__all__ = ["save_pretrained", "saved_scratch", "push_to_hub", "upload_saved", "saved_files", "SAVED_FILES",
           "WEIGHTS_NAME", "CONFIG_NAME", "CARD_NAME"]

#: the files :func:`save_pretrained` writes: all that is uploaded from a saved folder
SAVED_FILES = (WEIGHTS_NAME, CONFIG_NAME, CARD_NAME)

FORMAT_VERSION = 1


# --- writing -----------------------------------------------------------------------------------------------

#: what saving reads from a model; weights/ checks for these rather than importing the model classes
SAVED_ATTRIBUTES = ("arch_name", "pretrained_cfg", "inflation", "num_classes", "in_chans", "global_pool",
                    "drop_rate", "video_facts")


def _inflated(model: nn.Module) -> bool:
    """Whether ``model`` is a 2D network inflated on the fly (``inflate:...``), saved with its source and design."""
    return getattr(model, "arch_name", "") == INFLATED_ARCH


def _unwrap(model: nn.Module) -> nn.Module:
    needed = [a for a in SAVED_ATTRIBUTES if not (_inflated(model) and a in ("global_pool", "drop_rate"))]
    if not isinstance(model, nn.Module) or not getattr(model, "arch_name", "") or not all(
            hasattr(model, a) for a in needed):
        raise TypeError(f"save_pretrained takes a registered i3zoo model (e.g. from create_model); got "
                        f"{type(model).__name__}")
    return model


def model_args_of(model: nn.Module) -> Dict[str, Any]:
    """Every constructor argument that shapes the model (and the inflation mode), for ``config.json``."""
    if _inflated(model):
        return dict(source=model.source, design=model.named_design(), inflation=model.inflation,
                    num_classes=model.num_classes, in_chans=model.in_chans)
    args = dict(inflation=model.inflation, num_classes=model.num_classes, in_chans=model.in_chans,
                global_pool=model.global_pool, drop_rate=model.drop_rate)
    if hasattr(model, "transform_input"):  # Inception-v1's input re-normalisation (a weight convention)
        args["transform_input"] = model.transform_input
    if getattr(model, "same_padding", None) is not None:  # DeepMind's I3D: the port's numerics
        args.update(same_padding=model.same_padding, bn_eps=model.bn_eps)
    return args


def _public_source_2d(model: nn.Module) -> Dict[str, Any]:
    """The 2D source for the config: its sha256 (hashed here, at export), never its local path."""
    source = getattr(model, "source_2d", None) or {}
    public = {k: v for k, v in source.items() if not k.startswith("_")}
    if source.get("_path"):
        public["sha256"] = sha256_of(source["_path"])
    return public


_STAGING, _OLD = ".i3zoo-staging-", ".i3zoo-old-"


def _exchange(a: Path, b: Path) -> bool:
    """Swap two directories in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``); False where unsupported.

    os.replace cannot put a directory over a non-empty one, and two renames leave a moment with no folder.
    """
    import ctypes
    import errno

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _check_target(target: Path) -> None:
    if not target.exists():
        return
    if not target.is_dir() or target.is_symlink():
        raise FileExistsError(f"{target} exists and is not a folder; save_pretrained writes a folder")
    foreign = sorted(p.name for p in target.iterdir() if p.name not in SAVED_FILES)
    if foreign:
        raise FileExistsError(
            f"{target} holds files that save_pretrained did not write ({', '.join(foreign[:5])}); it replaces the "
            "whole folder, so it saves only into a new or empty folder or over an earlier save"
        )


def save_pretrained(model: nn.Module, directory: Union[str, os.PathLike], *, measure: bool = True,
                    label_names: Optional[Sequence[str]] = None,
                    training: Optional[Dict[str, Any]] = None) -> Path:
    """Write ``model`` as a Hub-ready folder: ``model.safetensors``, ``config.json``, ``README.md``.

    Atomic as a whole: everything that can fail (measuring the equivalence, reading the 2D source, rendering
    the card) happens first; the files are then written into a temporary sibling folder, which is swapped in
    for ``directory`` in one step. A failure, or the process being killed at any moment, leaves the previous
    complete folder (or none); leftovers of a killed save are removed by the next save. A lock file beside
    the folder (``.NAME.i3zoo-lock``) keeps a second writer waiting. ``directory`` must be new, empty or an
    earlier save: other files in it are never replaced.

    With ``measure``, the boring-video equivalence of the weights against their 2D source (when the model
    was inflated from one) is measured and recorded in the config and the card.

    ``label_names`` (one per class; default: the model's own ``pretrained_cfg["label_names"]`` when they fit
    its classes) go into the config's ``pretrained_cfg``, timm's place for them, so that the loaded model
    names its classes.

    ``training`` marks weights trained after inflation (``i3zoo train`` passes it): ``start``, ``train``,
    ``epochs`` and ``validation``, each a short text for the card, which then describes the fine-tuning and claims
    neither ImageNet weights nor the equivalence (not measured: fine-tuning ends it); recorded in the config too.

    Returns:
        The folder.
    """
    model = _unwrap(model)
    target = Path(os.path.abspath(directory))
    if not target.name:
        raise ValueError(f"save_pretrained needs a folder name, got {directory!r}")
    _check_target(target)
    if label_names is not None:
        label_names = [str(name) for name in label_names]
        if len(label_names) != model.num_classes:
            raise ValueError(f"{len(label_names)} label names for a model of {model.num_classes} classes")
    # first everything that can fail, while nothing is written
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    source_2d = _public_source_2d(model)
    card, equivalence = _card(model, source_2d, measure=measure, label_names=label_names, training=training)
    config = _timm_config(model, label_names)
    i3zoo_block = dict(format_version=FORMAT_VERSION, **model.video_facts(), source_2d=source_2d,
                       equivalence=equivalence)
    if training is not None:
        i3zoo_block["training"] = dict(training)
    _write_folder(target, tensors, config, i3zoo_block, card)
    return target


def _card(model: nn.Module, source_2d: Dict[str, Any], *, measure: bool, label_names: Optional[List[str]],
          training: Optional[Dict[str, Any]]) -> Tuple[str, Dict[str, Any]]:
    """The model card and the equivalence record of a save (measured here, unless trained or not asked for)."""
    from .cards import render_card, render_finetuned_card
    from .verify import measure_equivalence

    if _inflated(model):
        from .cards import render_inflated_card

        why = "weights trained after inflation" if training else "inflated on the fly: i3zoo's tests hold it"
        return render_inflated_card(model, source_2d, training), {"measured": False, "why": why}
    model_id = f"{model.arch_name}.{model.pretrained_cfg.get('tag')}"
    if training is None:
        equivalence = measure_equivalence(model) if measure else {"measured": False, "why": "not asked for"}
        return render_card(model_id, inflation=model.inflation, num_classes=model.num_classes,
                           equivalence=equivalence, source_2d=source_2d), equivalence
    missing = {"start", "train", "epochs", "validation"} - set(training)
    if missing:
        raise ValueError(f"training needs {', '.join(sorted(missing))}; got {', '.join(sorted(training))}")
    card = render_finetuned_card(model_id, inflation=model.inflation, num_classes=model.num_classes,
                                 params=sum(t.numel() for t in model.parameters()),
                                 label_names=label_names or model.pretrained_cfg.get("label_names"),
                                 training=training)
    return card, {"measured": False, "why": "weights trained after inflation: the equivalence no longer holds"}


def _timm_config(model: nn.Module, label_names: Optional[List[str]]) -> Dict[str, Any]:
    """timm's ``config.json`` of the model (its own ``save_config_for_hf``), less what a saved config never holds."""
    from timm.models._hub import save_config_for_hf

    with tempfile.TemporaryDirectory(prefix="i3zoo-config-") as scratch:
        timm_config = Path(scratch) / CONFIG_NAME
        # timm keeps label_names only when the cfg's num_classes is the model's: say both
        overrides = dict(pretrained_cfg=dict(num_classes=model.num_classes, label_names=label_names)) \
            if label_names is not None else None
        save_config_for_hf(model, str(timm_config), model_config=overrides, model_args=model_args_of(model))
        config = json.loads(timm_config.read_text())
    # timm records every factory argument; these two say how a model was trained, not what it is (a loaded
    # model starts unfrozen), and config.json may only hold what rebuilds the network
    for training_convention in ("frozen_stages", "norm_eval"):
        config.get("model_args", {}).pop(training_convention, None)
    # which source read the weights is the tag's business: the folder's weights are read as a folder
    config.get("pretrained_cfg", {}).pop("weights_source", None)
    return config


def _write_folder(target: Path, tensors: Dict[str, Any], config: Dict[str, Any], i3zoo_block: Dict[str, Any],
                  card: str) -> None:
    """Write the folder into a staging sibling and swap it in for ``target``, under the folder's lock."""
    import shutil
    import uuid

    from filelock import FileLock
    from safetensors.torch import save_file

    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target.parent / f".{target.name}.i3zoo-lock")):
        for leftover in target.parent.glob(f".{target.name}.i3zoo-*-*"):  # of a save that was killed
            if leftover.is_dir() and (_STAGING in leftover.name or _OLD in leftover.name):
                shutil.rmtree(leftover, ignore_errors=True)
        _check_target(target)  # again: another process may have written meanwhile
        staging = target.parent / f".{target.name}{_STAGING}{uuid.uuid4().hex}"
        staging.mkdir()
        try:
            save_file(tensors, str(staging / WEIGHTS_NAME), metadata={"format": "pt"})
            block = config["i3zoo"] = {}
            for key, value in i3zoo_block.items():
                block[key] = value
                if key == "source_2d":  # where format 1 records the weights' hash
                    block["weights_sha256"] = sha256_of(staging / WEIGHTS_NAME)
            (staging / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
            (staging / CARD_NAME).write_text(card, encoding="utf-8")
            if not target.exists():
                os.rename(staging, target)
            elif _exchange(staging, target):
                shutil.rmtree(staging)  # now the previous save
            else:
                old = target.parent / f".{target.name}{_OLD}{uuid.uuid4().hex}"
                os.rename(target, old)
                os.rename(staging, target)
                shutil.rmtree(old)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise


def push_to_hub(
    model: nn.Module,
    repo_id: str,
    *,
    token: Optional[str] = None,
    private: bool = False,
    revision: Optional[str] = None,
    commit_message: str = "Add i3zoo pre-inflated weights",
    endpoint: Optional[str] = None,
):
    """Save ``model`` and upload the folder to the Hugging Face Hub in one commit.

    Creates the repository (and the ``revision`` branch) if needed. The token is handed to huggingface_hub
    only (``None``: its usual ``HF_TOKEN`` / login); it is never written to any file.

    Returns:
        huggingface_hub's ``CommitInfo`` for the upload (``.oid`` is the commit).
    """
    with saved_scratch(model) as folder:
        return upload_saved(folder, repo_id, token=token, private=private, revision=revision,
                            commit_message=commit_message, endpoint=endpoint)


@contextlib.contextmanager
def saved_scratch(model: nn.Module):
    """``save_pretrained`` into a scratch folder for uploading; on leaving, the folder is removed, and with it
    the lock file the save keeps beside the folder (a folder of its own, not a name straight under the temp dir)."""
    with tempfile.TemporaryDirectory(prefix="i3zoo-push-") as scratch:
        yield save_pretrained(model, Path(scratch) / "model")


def upload_saved(folder, repo_id: str, *, token=None, private=False, revision=None,
                 commit_message="Add i3zoo pre-inflated weights", endpoint=None):
    """Upload a ``save_pretrained`` folder in one commit, creating the repo and branch if needed.

    Only the files :func:`save_pretrained` writes are sent (:func:`saved_files`): never a dotfile (a ``.env``),
    another file that happens to be there, or a symlink's target. ``create_commit`` with those files, not
    ``upload_folder``: the latter may split a large upload into several commits ("... (part 2)"), and a variant
    must land whole or not at all.
    """
    from huggingface_hub import CommitOperationAdd, HfApi

    from .._version import __version__

    files, _ = saved_files(folder)  # before anything reaches the Hub
    api = HfApi(endpoint=endpoint, token=token, library_name="i3zoo", library_version=__version__)
    repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
    if revision:
        api.create_branch(repo_id, branch=revision, exist_ok=True)
    operations = [CommitOperationAdd(path_in_repo=p.name, path_or_fileobj=str(p)) for p in files]
    return api.create_commit(repo_id=repo_id, operations=operations, revision=revision,
                             commit_message=commit_message)


def saved_files(folder: Union[str, os.PathLike]) -> Tuple[List[Path], List[Tuple[str, str]]]:
    """What an upload of ``folder`` sends: ``(files, left_out)``.

    ``files`` are :data:`SAVED_FILES`, each a regular file inside the folder (checked with ``lstat``: a symlink is
    never followed, wherever it points); ``left_out`` names, with the reason, everything else in the folder.

    Raises:
        CheckpointError: one of :data:`SAVED_FILES` is missing, a symlink or not a regular file.
    """
    import stat

    folder = Path(folder)
    files, left_out = [], []
    for entry in sorted(folder.iterdir()):
        mode = entry.lstat().st_mode
        if entry.name in SAVED_FILES:
            if not stat.S_ISREG(mode):
                what = "a symlink" if stat.S_ISLNK(mode) else "not a regular file"
                raise CheckpointError(f"{entry} is {what}; an upload sends only regular files inside the folder, as "
                                      "save_pretrained writes them")
            files.append(entry)
        else:
            why = ("a symlink" if stat.S_ISLNK(mode) else "a dotfile" if entry.name.startswith(".")
                   else "a folder" if stat.S_ISDIR(mode) else "not a file save_pretrained writes")
            left_out.append((entry.name, why))
    missing = sorted(set(SAVED_FILES) - {p.name for p in files})
    if missing:
        raise CheckpointError(f"{folder} has no {', '.join(missing)}: not a folder save_pretrained wrote")
    return files, left_out
