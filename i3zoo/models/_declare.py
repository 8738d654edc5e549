"""Each model declared once: a family's table of :class:`Variant` rows becomes its named classes, its timm
registrations with their weight tags, the package's exports and the hub entry points.

timm declares a variant as one short function over a table of arguments and fills ``__all__`` and the Hub defaults
at registration; here the row is the declaration and :func:`declare` derives the rest. A named class
(``I3ResNet50``) is a real class, created from the row: users import, subclass and construct it
(``I3ResNet50(pretrained=True)``), and it pickles by its module and name like any class written out. Everything a
card, a check or ``optimize_for_inference`` needs to know about a model is an attribute of its class, read through
``i3zoo.registry.model_class`` without building anything.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping

from timm.models import generate_default_cfgs
from torch import nn

from ..registry import register, unregister
from ..weights.sources import VideoCfg
from ..weights.torchvision_imagenet import Torchvision2D
from ._builder import create_registered

__all__ = ["Variant", "declare", "undeclare", "declared_classes"]


@dataclass(frozen=True)
class Variant:
    """One registered model: everything about it that is not its family's code.

    Attributes:
        name: the registered name, e.g. ``"i3resnet50_i3d"`` (timm, torch.hub, the commands).
        class_name: the named class, e.g. ``"I3ResNet50I3D"`` (importable from ``i3zoo``).
        title: one line on what it is, the first line of its docstrings and hub help.
        network_2d: the torchvision 2D network it mirrors; its ImageNet weights are the first tags (the first of
            all, ``tv_in1k``, is the default).
        args: the family's architecture arguments, set as class attributes (``block_counts``, ``temporal`` ...).
        extra_tags: further weight tags after the ImageNet ones, ``{tag: cfg}`` (e.g. Kinetics weights).
    """

    name: str
    class_name: str
    title: str
    network_2d: Torchvision2D
    args: Mapping[str, Any] = field(default_factory=dict, hash=False)
    extra_tags: Mapping[str, VideoCfg] = field(default_factory=dict, hash=False)

    def tags(self, family: type) -> Dict[str, VideoCfg]:
        """The variant's tags in order (the default first), each cfg naming the family's first and last layers."""
        names = dict(classifier=family.classifier_name, first_conv=family.first_conv_name)
        cfgs = {**self.network_2d.tags(), **self.extra_tags}
        return {tag: dataclasses.replace(cfg, **names) for tag, cfg in cfgs.items()}


#: declared name -> (variant, named class), in declaration order
_DECLARED: Dict[str, Any] = {}


def _docstring(variant: Variant, family: type, tags: List[str]) -> str:
    listed = ", ".join(f"``{tag}``" + (" (default)" if i == 0 and len(tags) > 1 else "") for i, tag in enumerate(tags))
    return (f"{variant.title}. Weights: {listed}.\n\n    Declared in the variant table of ``{family.__module__}``; "
            f"see :class:`{family.__name__}` for the arguments.\n    ")


def _check(variant: Variant, family: type) -> None:
    if variant.name in _DECLARED:
        raise ValueError(f"{variant.name} is declared twice ({_DECLARED[variant.name][1].__module__} and now "
                         f"{family.__module__})")
    unknown = sorted(k for k in variant.args if not hasattr(family, k))
    if unknown:  # a typo in a table would otherwise become a silent new attribute
        raise TypeError(f"variant {variant.name}: {family.__name__} has no architecture argument {unknown[0]!r}")


def _named_class(variant: Variant, family: type, module: str, tags: List[str]) -> type:
    attributes = dict(variant.args, arch_name=variant.name, title=variant.title, network_2d=variant.network_2d,
                      torchvision_arch=variant.network_2d.arch, __module__=module, __qualname__=variant.class_name,
                      __doc__=_docstring(variant, family, tags))
    return type(variant.class_name, (family,), attributes)


def _entrypoint(name: str, cls: type, module: str, title: str) -> Callable[..., nn.Module]:
    def entrypoint(pretrained: bool = False, **kwargs: Any) -> nn.Module:
        return create_registered(cls, pretrained, **kwargs)

    entrypoint.__name__ = entrypoint.__qualname__ = name
    entrypoint.__module__ = module
    entrypoint.__doc__ = f"{title}; see :class:`{cls.__name__}`."
    entrypoint.model_cls = cls  # what i3zoo.registry.model_class reads
    return entrypoint


def declare(family: type, variants: List[Variant], module: str) -> List[str]:
    """Create and register every variant of ``family`` declared in ``module`` (the family file's ``__name__``).

    For each row: the named class (set in the module, so it imports and pickles by name), its tags as the module's
    timm ``default_cfgs``, and a registered timm entry point. Returns the class names, for the module's
    ``__all__``.
    """
    for variant in variants:  # every row first: a table is declared whole or not at all
        _check(variant, family)
    namespace = sys.modules[module].__dict__
    default_cfgs = namespace.setdefault("default_cfgs", {})
    names = []
    for variant in variants:
        tags = variant.tags(family)
        cls = _named_class(variant, family, module, list(tags))
        default_cfgs.update(generate_default_cfgs({f"{variant.name}.{tag}": cfg for tag, cfg in tags.items()}))
        namespace[variant.class_name] = cls
        entrypoint = _entrypoint(variant.name, cls, module, variant.title)
        namespace[variant.name] = entrypoint
        register(entrypoint)
        _DECLARED[variant.name] = (variant, cls)
        names.append(variant.class_name)
    return names


def undeclare(name: str) -> None:
    """Undo the declaration of ``name`` (its class, cfgs, registration and export), e.g. a test's toy variant."""
    variant, cls = _DECLARED.pop(name)
    namespace = sys.modules[cls.__module__].__dict__
    for key in (variant.class_name, variant.name):
        namespace.pop(key, None)
    namespace.get("default_cfgs", {}).pop(name, None)
    exported = namespace.get("__all__", [])
    for key in (variant.class_name, variant.name):  # timm's register_model exports the entry point's name too
        if key in exported:
            exported.remove(key)
    unregister(name)


def declared_classes() -> Dict[str, type]:
    """The family classes and the declared named classes by name, in declaration order (each family before its
    variants)."""
    classes: Dict[str, type] = {}
    for _, cls in _DECLARED.values():
        family = cls.__mro__[1]
        classes.setdefault(family.__name__, family)
        classes[cls.__name__] = cls
    return classes
