"""Print pyproject's runtime, dev and quantization requirements (minus sam2) for `make lock`."""

import shlex
import tomllib
from pathlib import Path

project = tomllib.loads(Path("pyproject.toml").read_text())["project"]
requirements = project["dependencies"] + sum(project["optional-dependencies"].values(), [])
print(" ".join(shlex.quote(r) for r in requirements if not r.startswith("sam2")))
