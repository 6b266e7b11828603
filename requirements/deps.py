"""Print pyproject's runtime, dev and quantization requirements (minus sam2) for `make lock`."""

import itertools
import shlex
from pathlib import Path

import tomllib

project = tomllib.loads(Path("pyproject.toml").read_text())["project"]
extras = itertools.chain.from_iterable(project["optional-dependencies"].values())
requirements = [*project["dependencies"], *extras]
print(" ".join(shlex.quote(r) for r in requirements if not r.startswith("sam2")))
