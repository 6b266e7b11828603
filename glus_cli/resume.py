"""The one resume rule of every command: an expression folder with its `expression.json` is complete.

`glus_cli.runner.segment_to_outputs` writes an expression's ``expression.json`` last, after every mask
file and its preview, so a run killed at any moment never leaves a folder that looks finished. Every
command resumes by this rule alone: `glus segment` (its numbered expression folders), `glus batch` local
and on Ray (``OUT/<video>/<exp_id>/``, the Ray driver applying it before it sends a video) and
`glus keyframes` (which also needs the folder's ``confidence.json``: `is_complete`'s `also`). A complete
folder is kept; any other is emptied and redone (`restart`). A run whose folders are all complete is
complete, and a rerun of it loads no model.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

RECORD_NAME = "expression.json"
"""An expression's record, written last: its presence makes the folder complete."""

IsDone = Callable[[Path], bool]
"""Whether an expression folder is complete (`is_complete`, or a command's stricter variant)."""


def is_complete(folder: Path, also: Sequence[str] = ()) -> bool:
    """Whether the expression folder holds its `RECORD_NAME` (and each file named in `also`)."""
    return all((folder / name).is_file() for name in (RECORD_NAME, *also))


def pending(folders: Sequence[Path], is_done: IsDone = is_complete) -> list[int]:
    """Indices of the folders still to do, in order."""
    return [index for index, folder in enumerate(folders) if not is_done(folder)]


def restart(folder: Path) -> None:
    """Empty an incomplete expression folder (what an interrupted attempt left), so it is redone afresh."""
    if folder.exists():
        shutil.rmtree(folder)
