"""Video in: decoding video files, sampling clips as frame indices, transforms, datasets.

Empty for now; it will hold decoding (PyAV by default, TorchCodec optional), pure clip samplers, transforms
built on ``torchvision.transforms.v2`` from a model's pretrained cfg, and ``torch.utils.data`` datasets.

May import: torch, torchvision, av / torchcodec, and nothing of i3zoo but ``registry`` (for a model's cfg);
it never imports ``models``, ``weights``, ``train`` or ``cli``.
"""
