"""Regenerate model_cards/<arch.tag>.md from the code (tests/test_publishing.py checks they are current)."""

from pathlib import Path

from i3zoo.weights.cards import write_committed_cards

for path in write_committed_cards(Path(__file__).resolve().parents[1] / "model_cards"):
    print("wrote", path.name)
