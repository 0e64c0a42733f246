"""Rewrite config.json's ``env`` from the option registry (``make reference``): one variable a line."""

import json
import subprocess
import sys
from pathlib import Path

manifest = Path(__file__).resolve().parents[1] / "config.json"
generated = subprocess.run(
    [sys.executable, "-m", "logdriver", "options", "--format", "manifest"], check=True, capture_output=True, text=True
)
data = json.loads(manifest.read_text())
data["env"] = "@ENV@"
text = json.dumps(data, indent=2)
lines = ",\n".join("    " + json.dumps(entry) for entry in json.loads(generated.stdout))
manifest.write_text(text.replace('"@ENV@"', "[\n" + lines + "\n  ]") + "\n")
