"""Shared fixtures: 2D torchvision models with seeded random weights, standing in for ImageNet checkpoints.

Pretrained weights cannot be downloaded here, so every test makes its own 2D checkpoint: a torchvision model
with seeded random weights and randomized BatchNorm statistics (so BatchNorm is not the identity), saved to a
file and loaded through the same code a user's download goes through.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from pathlib import Path
from typing import Callable, Dict

# The suite runs in pytest-xdist workers, one per core (setup.cfg: -n auto): each computes with one thread, set
# before torch starts its thread pool and inherited by the commands a test starts. Two threads in each of two
# workers on two cores spin-wait for each other (a run then takes 13 minutes instead of 8).
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402

if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)

import i3zoo  # noqa: E402
from i3zoo.weights.verify import seeded_2d_state_dict, torchvision_2d, torchvision_arch_of


@functools.lru_cache(maxsize=None)
def _seeded_state_dict(arch: str, seed: int) -> Dict[str, torch.Tensor]:
    # the same seeded weights that `i3zoo verify` and the model cards use without ImageNet files
    return seeded_2d_state_dict(torchvision_arch_of(arch), seed)


def seeded_2d_model(arch: str, seed: int = 0) -> torch.nn.Module:
    """The torchvision 2D counterpart of ``arch`` with seeded random weights, in eval mode."""
    # built on the meta device (no random initialisation that the weights would overwrite), as torchvision
    # builds it for its ImageNet weights (GoogLeNet's transform_input)
    model = torchvision_2d(torchvision_arch_of(arch), {k: v.clone() for k, v in _seeded_state_dict(arch, seed).items()})
    return model.eval()


def save_2d_checkpoint(arch: str, path: Path, seed: int = 0) -> Path:
    """Save the seeded 2D state dict of ``arch`` as ``.pth`` or ``.safetensors`` (by ``path``'s suffix)."""
    state_dict = _seeded_state_dict(arch, seed)
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state_dict.items()}, str(path))
    else:
        torch.save(state_dict, path)
    return path


def pytest_xdist_auto_num_workers(config) -> int:
    """``-n auto``: a worker per core, at most two (each holds the session's random models, a few GB)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return min(cores, 2)


@pytest.fixture(scope="session")
def checkpoint_dir(tmp_path_factory) -> Path:
    """One folder of seeded 2D checkpoints for the whole run: the xdist workers share it (about 3 GB)."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return tmp_path_factory.mktemp("checkpoints2d")
    shared = tmp_path_factory.getbasetemp().parent / "checkpoints2d"  # the run's folder, above each worker's
    shared.mkdir(exist_ok=True)
    return shared


@pytest.fixture(scope="session")
def checkpoint_2d(checkpoint_dir) -> Callable[[str], Path]:
    """``checkpoint_2d(arch)`` -> path of a seeded 2D ``.pth`` checkpoint for ``arch`` (made once per run: a worker
    that finds another writing it waits for the finished file)."""
    from filelock import FileLock

    def make(arch: str, suffix: str = ".pth") -> Path:
        path = checkpoint_dir / f"{arch}{suffix}"
        with FileLock(str(path) + ".lock"):
            if not path.exists():
                temporary = save_2d_checkpoint(arch, path.with_name(f".{path.name}.tmp{os.getpid()}{suffix}"))
                temporary.replace(path)
        return path

    return make


def boring_video(images: torch.Tensor, frames: int) -> torch.Tensor:
    """(N, C, H, W) images -> (N, C, T, H, W) clips in which every frame is the image."""
    return images.unsqueeze(2).expand(-1, -1, frames, -1, -1).contiguous()


def relative_error(output: torch.Tensor, reference: torch.Tensor) -> float:
    """max |output - reference| / max |reference| (the measure `i3zoo verify` reports)."""
    return ((output - reference).abs().max() / reference.abs().max()).item()


ALL_MODELS = i3zoo.list_models()
RESNETS = [m for m in ALL_MODELS if m.startswith("i3resnet")]
DENSENETS = [m for m in ALL_MODELS if m.startswith("i3densenet")]


#: the head of the randomly initialised models the registry-wide tests share (timm's backward test uses 42)
RANDOM_MODEL_CLASSES = 42


@pytest.fixture(scope="session", params=ALL_MODELS)
def registered_name(request) -> str:
    """Every registered name. Session-scoped and parametrized, so pytest runs the tests of one name together,
    across test files: each random model below is built once, and only one is alive at a time."""
    return request.param


@pytest.fixture(scope="session")
def _random_model_and_state(registered_name):
    torch.manual_seed(0)
    model = i3zoo.create_model(registered_name, num_classes=RANDOM_MODEL_CLASSES)
    return model, {k: v.clone() for k, v in model.state_dict().items()}


@pytest.fixture
def random_model(_random_model_and_state) -> torch.nn.Module:
    """The registered model with seeded random weights, shared by the tests of its name: reset to its initial
    weights and statistics, no gradients, no gradient checkpointing, eval mode."""
    model, initial = _random_model_and_state
    model.load_state_dict(initial)
    model.zero_grad(set_to_none=True)
    model.set_grad_checkpointing(False)
    return model.eval()


@contextlib.contextmanager
def float64_default():
    """Build models in float64, so the inflation itself runs in float64 (W / t is then exact)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


@pytest.fixture
def run_cli(monkeypatch, capsys, tmp_path):
    """``run_cli(*args)`` runs the ``i3zoo`` command's ``main`` in this process, as the console script does,
    with ``TORCH_HOME`` in ``tmp_path`` (or ``torch_home=``): its exit code, stdout and stderr.

    In-process, so that each call does not pay a fresh interpreter's imports; ``test_cli.py`` runs the real
    command once in a subprocess.
    """
    import subprocess

    from i3zoo.cli import main

    def run(*args: str, torch_home: Path = None) -> subprocess.CompletedProcess:
        monkeypatch.setenv("TORCH_HOME", str(torch_home or tmp_path))
        capsys.readouterr()
        try:
            code = main(list(args))
        except SystemExit as e:  # argparse errors (already printed) and `raise SystemExit("message")`
            if isinstance(e.code, str):
                print(e.code, file=sys.stderr)
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(list(args), code, out, err)

    return run


def cache_entries(folder: Path) -> list:
    """Names in a checkpoint cache folder, leaving out i3zoo's private ``.i3zoo`` folder after checking that it
    holds only locks and recorded hashes (no partial download hides there)."""
    if not folder.exists():
        return []
    private = folder / ".i3zoo"
    if private.exists():
        stray = [p.name for p in private.iterdir() if not p.name.endswith((".lock", ".sha256"))]
        assert not stray, f"unexpected files in {private}: {stray}"
    return sorted(p.name for p in folder.iterdir() if p.name != ".i3zoo")
