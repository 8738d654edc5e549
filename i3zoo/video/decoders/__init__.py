"""Video decoders as plug-ins: the interface, the registry, and one module per decoder.

Modelled on PyTorchVideo's ``Video`` and ``select_video_class(name)`` (one class per decoder behind an abstract
interface). A decoder is a :class:`Decoder` subclass decorated with :func:`register_decoder`; every module of this
package whose name does not start with ``_`` is imported here, so adding a decoder is adding one module (a decoder
defined elsewhere registers the same way when its module is imported). ``backend="auto"``, ``--backend``'s choices
and :data:`i3zoo.video.BACKENDS` read the registry.

Built in: ``pyav`` (the default; FFmpeg inside PyAV's wheels) and ``torchcodec`` (optional, preferred by ``auto``
where it can load FFmpeg's shared libraries).

The interface and the registry live in ``_interface``, which the decoder modules import: were they here, this
package and its modules would import each other.
"""

from __future__ import annotations

import importlib
import pkgutil

from ._interface import (
    Decoder,
    StreamIndex,
    VideoError,
    backend_choices,
    decoder_class,
    decoder_names,
    decoder_status,
    register_decoder,
    resolve_backend,
    unregister_decoder,
)

__all__ = ["Decoder", "StreamIndex", "VideoError", "backend_choices", "decoder_class", "decoder_names",
           "decoder_status", "register_decoder", "resolve_backend", "unregister_decoder"]


def _import_decoder_modules() -> None:
    for module in pkgutil.iter_modules(__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")


_import_decoder_modules()
