"""Where weights come from and go: weight sources, inflation, checkpoints, the Hugging Face Hub, model cards.

``sources.py`` the weight-source interface (where a tag's file comes from, how its state dict becomes the model's,
what its cfg and card say), the tag cfg (``VideoCfg``) and the strict fill every source ends in, and one module
per source: ``torchvision_imagenet.py`` (torchvision's 2D ImageNet weights, inflated; ``Torchvision2D``, the 2D
network a model declares), ``pytorchvideo.py`` (PyTorchVideo's Kinetics-400 checkpoints and the strict converter
from their layout), ``preinflated.py`` (saved folders read back: ``hf-hub:``, ``local-dir:``, published copies).
``inflate.py`` the inflation rule and the strict 2D -> 3D state-dict loader, ``checkpoints.py`` reading
plain-weight files and fetching them hash-checked, ``config.py`` validating a saved ``config.json``,
``verify.py`` the boring-video check of inflated weights against their 2D source, ``hub.py``
``save_pretrained`` / ``push_to_hub``, ``published.py`` the records of published variants, ``cards.py`` and
``card_templates/`` the model cards, ``labels/`` class names shipped as data (``kinetics400.txt``).

It works on state dicts, configs and any module that has the attributes it needs, and imports nothing from
``i3zoo.models``: the models depend on their weights, never the other way round (a test walks the import
graph). May import: torch, torchvision (the 2D side of the check), timm, huggingface_hub, safetensors,
filelock, the top-level ``files`` (atomic writes) and ``text`` (label names), and the top-level ``registry``
and ``facts``, which reach a model only by its registered name.
"""

# hub (save_pretrained, push_to_hub) is not imported here: it uses registry, which imports weights.config
from .checkpoints import CheckpointError, read_state_dict
from .inflate import INFLATION_MODES, CheckpointMismatchError, inflate_conv_weight, inflate_state_dict

__all__ = [
    "INFLATION_MODES", "inflate_conv_weight", "inflate_state_dict", "CheckpointError",
    "CheckpointMismatchError", "read_state_dict",
]
