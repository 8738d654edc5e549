"""torch.hub entry points of i3zoo: I3D-inflated 3D ResNets, ResNeXts, Wide ResNets, DenseNets and Inception-v1
for video, one per registered model (``torch.hub.list``), with help written from each model's declaration and
measured facts (``torch.hub.help``).

    model = torch.hub.load("<owner>/i3zoo", "i3resnet50", pretrained=True)

Every entry point takes the keyword arguments of ``i3zoo.create_model``: ``pretrained``, ``inflation``
("center" | "mean"), ``num_classes``, ``in_chans``, ``drop_rate``, ``global_pool``, ``pretrained_cfg``
(a weight tag such as "tv2_in1k"), ``pretrained_cfg_overlay`` (``dict(file=PATH)`` or ``dict(url=URL)``).
"""

dependencies = ["torch", "torchvision", "timm", "huggingface_hub", "safetensors"]

from i3zoo.facts import hub_entrypoints as _hub_entrypoints  # noqa: E402  (torch.hub reads `dependencies` first)

globals().update(_hub_entrypoints())
