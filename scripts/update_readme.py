"""Regenerate README.md's model, temporal-design and export tables from the code and its benchmark blocks from
benchmarks/{results,extract_results,train_results}/*/.

tests/test_cli.py, tests/test_presets.py, tests/test_export.py and tests/test_*benchmark.py check that they are
current.
"""

import re
from pathlib import Path

from i3zoo.facts import design_table, export_table, model_table

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def replace_block(text: str, marker: str, content: str) -> str:
    pattern = rf"(<!-- {re.escape(marker)}:start -->\n).*?(\n<!-- {re.escape(marker)}:end -->)"
    return re.sub(pattern, lambda m: m.group(1) + content + m.group(2), text, flags=re.S)


text = README.read_text()
new = replace_block(text, "model-table", model_table())
new = replace_block(new, "design-table", design_table())
new = replace_block(new, "export-table", export_table())
# (marker, results folder, rendered file): each benchmark's committed output, one README block per machine
BENCHMARK_BLOCKS = (("benchmark", "results", "results.md"), ("extract-benchmark", "extract_results", "extract.md"),
                    ("train-benchmark", "train_results", "train.md"),
                    ("inflation-coverage", "coverage_results", "coverage.md"),
                    ("inflate-speed", "inflate_speed_results", "speed.md"),
                    ("two-stream-benchmark", "two_stream_results", "two_stream.md"),
                    ("compile-cost", "compile_cost_results", "compile_cost.md"))
for tag, folder, rendered in BENCHMARK_BLOCKS:
    for run in sorted(p.parent for p in (ROOT / "benchmarks" / folder).glob(f"*/{rendered}")):
        marker = f"{tag}:{run.name}"
        if f"<!-- {marker}:start -->" not in new:
            print(f"benchmarks/{folder}/{run.name} has no block in README.md: add <!-- {marker}:start --> and "
                  f"<!-- {marker}:end --> lines where it belongs, then run this again")
            continue
        new = replace_block(new, marker, (run / rendered).read_text().strip())
README.write_text(new)
print("README.md", "updated" if new != text else "already current")
