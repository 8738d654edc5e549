"""Regenerate the model table in README.md from the code (tests/test_cli.py checks it is current)."""

import re
from pathlib import Path

from i3zoo.facts import model_table

README = Path(__file__).resolve().parents[1] / "README.md"

text = README.read_text()
new = re.sub(r"(<!-- model-table:start -->\n).*?(\n<!-- model-table:end -->)",
             lambda m: m.group(1) + model_table() + m.group(2), text, flags=re.S)
README.write_text(new)
print("README.md model table", "updated" if new != text else "already current")
