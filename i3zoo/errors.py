"""The one error type for a user's mistake in what they asked for: :class:`UsageError`.

A ``ValueError`` (so ``except ValueError`` still catches it, as torchvision's builders raise ``ValueError`` for
arguments that conflict with the weights), raised by the engines and the command line alike; the ``i3zoo``
command prints it as one line, ``i3zoo <command>: error: <message>``, and exits with status 2, as argparse does
for a bad flag.

Imports nothing, so every wing may use it.
"""

from __future__ import annotations

__all__ = ["UsageError"]


class UsageError(ValueError):
    """What was asked for cannot be done as asked: an unknown model, options that exclude each other, a value
    out of range, an input that does not exist. The message names what was wrong and what is allowed."""
