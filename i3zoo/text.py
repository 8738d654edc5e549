"""Untrusted text: label names and other strings that come from files (a model's ``config.json``, a list file, a
label file) are bounded in size and count, printed with control characters escaped, and escaped in model cards.

A label name reaches a terminal (``predict``, ``list``, errors) and a card (markdown rendered as HTML on the Hub):
an escape sequence in it could retitle or clear the terminal or write its clipboard (OSC 52), and markdown or HTML
in it could add links or scripts to a card. :func:`printable` escapes what a terminal would act on (Unicode's
control and format characters, the bidirectional overrides of "Trojan Source" included), as Python's ``repr``
writes them; :func:`card_text` makes a string inert in markdown and HTML. ``--json`` output stays exact: JSON
escapes control characters itself.

Imports nothing of i3zoo, so every wing may use it.
"""

from __future__ import annotations

import html
import re
import unicodedata
from typing import Iterable, List

__all__ = ["MAX_CLASSES", "MAX_LABEL_CHARS", "check_label_names", "check_class_count", "printable", "card_text"]

#: the most classes a model, a list file's labels or a label file may have (ImageNet-21k has 21,843)
MAX_CLASSES = 100_000
#: the longest label name, in characters (Kinetics-700's longest is 41)
MAX_LABEL_CHARS = 256


def check_class_count(count: int, where: str) -> None:
    """Raise ``ValueError`` naming ``where`` when ``count`` classes are more than :data:`MAX_CLASSES`."""
    if count > MAX_CLASSES:
        raise ValueError(f"{where}: {count:,} classes; at most {MAX_CLASSES:,} are allowed")


def check_label_names(names: Iterable[str], where: str) -> List[str]:
    """``names`` as a list, checked: at most :data:`MAX_CLASSES` names of at most :data:`MAX_LABEL_CHARS`
    characters each (``ValueError`` naming ``where`` and the first name too long, escaped)."""
    names = list(names)
    check_class_count(len(names), where)
    for number, name in enumerate(names):
        if len(name) > MAX_LABEL_CHARS:
            raise ValueError(f"{where}: label name {number} ({printable(name[:40])}...) has {len(name):,} "
                             f"characters; at most {MAX_LABEL_CHARS} are allowed")
    return names


def _escape(character: str) -> str:
    code = ord(character)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def printable(text: str) -> str:
    """``text`` with every control or format character (Unicode categories Cc, Cf; line breaks and tabs included)
    written as its Python escape (``\\x1b``, ``\\u202e``), so that printing it shows it and does nothing else."""
    return "".join(_escape(c) if unicodedata.category(c) in ("Cc", "Cf") else c for c in str(text))


_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>])")


def card_text(text: str) -> str:
    """``text`` made inert in a markdown card that the Hub renders as HTML: control characters escaped
    (:func:`printable`), HTML's special characters as entities, markdown's punctuation backslash-escaped."""
    return _MARKDOWN.sub(r"\\\1", html.escape(printable(text), quote=True))
