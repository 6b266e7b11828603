"""One resume rule for every command: an expression folder with its `expression.json` is complete.

`glus segment`, local `glus batch`, the Ray driver's plan and `glus keyframes` (which also wants its
`confidence.json`) must all see the same folders as complete.
"""

from __future__ import annotations

from pathlib import Path

from glus_cli.batch import BatchHooks, VideoTask
from glus_cli.cli.preamble import pending_count
from glus_cli.confidence import CONFIDENCE_NAME
from glus_cli.distributed.plan import pending_expressions
from glus_cli.keyframes import has_confidence
from glus_cli.resume import RECORD_NAME, is_complete, pending, restart
from glus_cli.runner import Expression


def make_folders(out: Path) -> VideoTask:
    """Video `v` with a complete expression 0, a partial 1 (masks, no record) and an absent 2."""
    (out / "v" / "0").mkdir(parents=True)
    (out / "v" / "0" / RECORD_NAME).write_text("{}")
    (out / "v" / "1").mkdir(parents=True)
    (out / "v" / "1" / "00000.png").write_bytes(b"partial")
    return VideoTask("v", out / "v.mp4", tuple(Expression(str(i), f"thing {i}") for i in range(3)))


def test_every_command_sees_the_same_folders_complete(tmp_path: Path) -> None:
    task = make_folders(tmp_path)
    folders = [tmp_path / "v" / exp.exp_id for exp in task.expressions]
    assert pending(folders) == [1, 2]  # glus segment
    assert [BatchHooks().is_done(folder) for folder in folders] == [True, False, False]  # glus batch
    assert pending_expressions(task, tmp_path) == ["1", "2"]  # the Ray driver's plan
    assert pending_count([task], tmp_path) == 2  # every command's "already complete"
    assert [has_confidence(folder) for folder in folders] == [False, False, False]  # keyframes: + confidence
    (folders[0] / CONFIDENCE_NAME).write_text("{}")
    assert has_confidence(folders[0]) and pending_count([task], tmp_path, has_confidence) == 2


def test_a_record_that_is_a_folder_is_not_complete(tmp_path: Path) -> None:
    (tmp_path / RECORD_NAME).mkdir()
    assert not is_complete(tmp_path)
    assert not is_complete(tmp_path, also=("missing.json",))


def test_restart_empties_only_what_exists(tmp_path: Path) -> None:
    make_folders(tmp_path)
    restart(tmp_path / "v" / "1")
    restart(tmp_path / "v" / "2")  # absent: nothing to do
    assert not (tmp_path / "v" / "1").exists() and is_complete(tmp_path / "v" / "0")
