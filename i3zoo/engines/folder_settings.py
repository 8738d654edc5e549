"""One settings per output folder: the first job to write into a folder records its settings, and a job with
other settings is refused before it writes anything (:func:`claim_folder`).

Each output file records the settings that made it, so a rerun skips what is complete; but two jobs started at
once with different settings on one ``--out`` would each write their own videos and both succeed into a mix. The
folder's record is created the way ``git`` and Mercurial take a lock: written whole under a temporary name and
hard-linked to its final name, which fails if the name exists, so exactly one writer wins even across machines
sharing the folder (a file system without hard links falls back to ``O_CREAT | O_EXCL``). The record lies beside
the folder, ``.NAME.i3zoo-settings.json`` (as ``save_pretrained``'s lock lies beside its folder), so the folder
holds the outputs and nothing else.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any, Dict, Optional, Union

from ..errors import UsageError

__all__ = ["settings_record", "claim_folder", "recorded_settings"]


def settings_record(out: Union[str, os.PathLike]) -> Path:
    """Where the settings of output folder ``out`` are recorded: ``.NAME.i3zoo-settings.json`` beside it."""
    out = Path(out).resolve()
    return out.parent / f".{out.name}.i3zoo-settings.json"


def _create_once(path: Path, text: str) -> bool:
    """Create ``path`` holding ``text`` unless it exists; True if this call created it."""
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    temporary.write_text(text, encoding="utf-8")
    try:
        os.link(temporary, path)
        return True
    except FileExistsError:
        return False
    except OSError:  # no hard links here: exclusive creation, written after (a reader retries a partial file)
        try:
            with open(path, "x", encoding="utf-8") as handle:
                handle.write(text)
            return True
        except FileExistsError:
            return False
    finally:
        temporary.unlink(missing_ok=True)


def _read(path: Path) -> Dict[str, Any]:
    for _ in range(50):  # a record another job is still writing (no hard links) is complete within moments
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            time.sleep(0.02)
    raise UsageError(f"{path} is not a settings record i3zoo can read; delete it, or use another output folder")


def recorded_settings(out: Union[str, os.PathLike]) -> Optional[Dict[str, Any]]:
    """The settings recorded for output folder ``out``, or None if no job has written there yet."""
    path = settings_record(out)
    return _read(path) if path.exists() else None


def claim_folder(out: Union[str, os.PathLike], settings: Dict[str, Any]) -> None:
    """Record ``settings`` as ``out``'s (:func:`settings_record`) if it has none yet; else check they are the
    recorded ones.

    Raises:
        UsageError: ``out`` records other settings (the differences are named), or a record that cannot be read.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = settings_record(out)
    wanted = json.loads(json.dumps(settings))  # as read back
    if _create_once(path, json.dumps(wanted, indent=1, sort_keys=True) + "\n"):
        return
    recorded = _read(path)
    if recorded != wanted:
        differences = "; ".join(f"{key}: {json.dumps(recorded.get(key))} there, {json.dumps(wanted.get(key))} here"
                                for key in sorted(set(recorded) | set(wanted)) if recorded.get(key) != wanted.get(key))
        raise UsageError(f"{out} holds features made with other settings ({differences}); a folder holds one "
                         f"settings: use another --out, or the same settings ({path} records them)")
