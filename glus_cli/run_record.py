"""Resumable runs: the run record that `glus segment`, `glus batch` and `glus keyframes` write first.

A run writes ``run.json`` into its output folder before any mask: every option that changes what is
written (and for `glus segment` the source and the expressions). Rerunning the same command with the
same ``--output-dir`` finds that record, compares it, and finishes the run: an expression folder with
its ``expression.json`` is complete and kept, any other is emptied and redone (`glus_cli.resume`). A
rerun whose record differs (other options, expressions or source) is refused, naming the first
difference, so two runs never mix in one folder. A folder that holds files but no record is refused
(`glus batch` and `glus keyframes` adopt it: their earlier versions wrote no record).

If a run fails before it has written anything but its record (the video cannot be read, the model cannot
be loaded), the folder it created is removed again, with the ``runs/`` root when that was created too.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from glus_cli.errors import OutputError
from glus_cli.files import new_run_dir, prepare_output_dir, write_json_atomic
from glus_cli.resume import RECORD_NAME
from glus_cli.runner import ExpressionOutcome

RUN_RECORD_NAME = "run.json"
DEFAULT_RUNS_ROOT = Path("runs")


@contextmanager
def resumable_run(
    path: Path | None,
    record: Mapping[str, Any],
    *,
    runs_root: Path = DEFAULT_RUNS_ROOT,
    adopt_unrecorded: bool = False,
) -> Iterator[Path]:
    """The output folder of a run described by `record`: new, empty, or the same run's to finish.

    Args:
        path: the ``--output-dir`` (None: a fresh numbered folder under `runs_root`).
        record: JSON-ready settings that must be equal for a rerun to continue the run.
        runs_root: where numbered folders go.
        adopt_unrecorded: a folder with files but no record is continued and given the record (`glus
            batch` and `glus keyframes`, whose earlier versions wrote none) instead of refused.

    Yields:
        The folder, holding the record. If the block raises while the folder holds nothing else and was
        created here, the folder (and `runs_root`, if created here and left empty) is removed.

    Raises:
        OutputError: the folder holds files but no record, or the record of a different run, or cannot
            be written (see `glus_cli.files.prepare_output_dir`).
    """
    record = json.loads(json.dumps(record))  # tuples as lists: compared as read back
    created_root = path is None and not runs_root.exists()
    if path is not None and path.is_dir() and any(path.iterdir()):
        if adopt_unrecorded and not (path / RUN_RECORD_NAME).exists():
            write_json_atomic(path / RUN_RECORD_NAME, record)
        _check_same_run(path, record)
        yield path
        return
    out = new_run_dir(runs_root) if path is None else prepare_output_dir(path)
    write_json_atomic(out / RUN_RECORD_NAME, record)
    try:
        yield out
    except BaseException:
        if [entry.name for entry in out.iterdir()] == [RUN_RECORD_NAME]:
            shutil.rmtree(out, ignore_errors=True)
            if created_root and runs_root.is_dir() and not any(runs_root.iterdir()):
                runs_root.rmdir()
        raise


def _check_same_run(path: Path, record: Mapping[str, Any]) -> None:
    """Refuse a non-empty folder unless it holds the record of this very run."""
    record_path = path / RUN_RECORD_NAME
    if not record_path.is_file():
        raise OutputError(f"{path} exists and is not empty; choose another --output-dir")
    try:
        previous = json.loads(record_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise OutputError(f"cannot read the run record {record_path}: {error}") from error
    difference = first_difference(previous, record)
    if difference is not None:
        raise OutputError(
            f"{path} holds a run with other settings ({difference}); rerun that command to finish it, "
            "or choose another --output-dir"
        )


def first_difference(before: Any, now: Any, where: str = "") -> str | None:
    """The first setting in which two records differ, as ``"key: was X, now Y"``; None when equal."""
    if isinstance(before, dict) and isinstance(now, dict):
        for key in [*before, *(key for key in now if key not in before)]:
            found = first_difference(before.get(key), now.get(key), f"{where}.{key}" if where else key)
            if found is not None:
                return found
        return None
    if before != now:
        return f"{where}: was {json.dumps(before)}, now {json.dumps(now)}"
    return None


def read_outcome(folder: Path) -> ExpressionOutcome:
    """The `ExpressionOutcome` a complete expression folder records in its ``expression.json``.

    Raises:
        OutputError: the record cannot be read.
    """
    path = folder / RECORD_NAME
    try:
        return ExpressionOutcome(**json.loads(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, TypeError) as error:
        raise OutputError(f"cannot read the expression record {path}: {error}") from error
