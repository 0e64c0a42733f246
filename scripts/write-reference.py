"""`make reference`: rewrite what is generated from the code that declares it.

docs/reference.md (every option, variable and metric), config.json's `env` (one variable
a line) and the README's budgets table. tests/unit/test_reference.py fails when any of
them differs from what the code declares.
"""

import json
from pathlib import Path

from logdriver.__main__ import sink_classes
from logdriver.server.reference import BUDGETS_BEGIN, BUDGETS_END, budgets_markdown, manifest_env, markdown

ROOT = Path(__file__).resolve().parents[1]
sinks = sink_classes()

(ROOT / "docs" / "reference.md").write_text(markdown(sinks))

manifest = ROOT / "config.json"
data = json.loads(manifest.read_text())
data["env"] = "@ENV@"
lines = ",\n".join("    " + json.dumps(entry) for entry in manifest_env(sinks))
manifest.write_text(json.dumps(data, indent=2).replace('"@ENV@"', "[\n" + lines + "\n  ]") + "\n")

readme = ROOT / "README.md"
text = readme.read_text()
start, end = text.index(BUDGETS_BEGIN), text.index(BUDGETS_END) + len(BUDGETS_END) + 1
readme.write_text(text[:start] + budgets_markdown() + text[end:])
