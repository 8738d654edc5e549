"""Pre-inflated weights published on the Hugging Face Hub: one record per ``arch.tag``.

A record is written when ``i3zoo push`` has uploaded a variant (it prints the line to add here). With a
record, ``pretrained=True`` downloads the safetensors file from the Hub, checks it against ``sha256`` and
loads it directly; without one, or when the Hub cannot be reached, the 2D source is inflated as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict

__all__ = ["HubWeights", "PUBLISHED"]


@dataclass(frozen=True)
class HubWeights:
    repo_id: str  # "org/i3resnet50.tv_in1k"
    revision: str  # the commit the weights were pushed in (40 hex), so the record cannot drift
    sha256: str  # of model.safetensors
    inflation: str = "center"


# No variant has been published yet: every tag inflates its 2D source.
PUBLISHED: Dict[str, HubWeights] = {}
