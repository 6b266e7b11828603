"""Print pyproject's runtime requirements and extras (minus sam2) for `make lock`.

The `test` extra is left out: Ultralytics declares torchvision, which would pull a CUDA torch; its pins are
resolved by hand at the end of cpu.lock.
"""

import itertools
import shlex
from pathlib import Path

import tomllib

project = tomllib.loads(Path("pyproject.toml").read_text())["project"]
extras = itertools.chain.from_iterable(
    requirements for name, requirements in project["optional-dependencies"].items() if name != "test"
)
requirements = [*project["dependencies"], *extras]
print(" ".join(shlex.quote(r) for r in requirements if not r.startswith("sam2")))
