"""Reruns that know: every command records its options, refuses a rerun with others, and a rerun of a
finished run says "already complete" and exits 0 without loading the model. `glus keyframes` writes
the `summary.json` every command writes; an expression too long for the model fails alone in a batch.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from glus_cli.cli.runs import EXIT_VIDEOS_FAILED, SUMMARY_NAME
from glus_cli.errors import OutputError
from glus_cli.model import glus as glus_module
from glus_cli.resume import RECORD_NAME
from glus_cli.run_record import RUN_RECORD_NAME
from glus_cli.testing.videos import write_synthetic_video
from tests.cli_helpers import run_glus
from tests.test_cli_errors import assert_one_error

pytest_plugins = ["tests.cli_fixtures"]
pytestmark = pytest.mark.usefixtures("cli_environment")

FAST = ["--context-frames", "1", "--query-frames", "1", "--device", "cpu", "--dtype", "float32", "--quiet"]
SHARED_SUMMARY_KEYS = {"glus_cli_version", "command", "model", "options", "timings_seconds", "memory"}
"""The keys `cli/runs.build_summary` gives every command's `summary.json`."""


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of one 2-frame video and an expressions file for it."""
    root = tmp_path_factory.mktemp("dataset")
    (root / "videos").mkdir()
    write_synthetic_video(root / "videos" / "clip.mp4", 2, size=(40, 56), fps=5.0)
    (root / "expressions.csv").write_text("video,expression\nclip,the red circle\nclip,the green square\n")
    return root


def command_args(command: str, dataset: Path, checkpoint: Path, out: Path) -> list[str]:
    """A small run of `command` into `out`."""
    if command == "segment":
        source = [str(dataset / "videos" / "clip.mp4"), "the red circle", "the green square"]
    else:
        source = [str(dataset / "videos"), "-e", str(dataset / "expressions.csv")]
    return [command, *source, "-o", str(out), "--model", str(checkpoint), *FAST]


@pytest.mark.parametrize("command", ["segment", "batch", "keyframes"])
def test_a_finished_run_is_already_complete_without_loading_the_model(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    dataset: Path,
    cli_checkpoint: Path,
    command: str,
) -> None:
    out = tmp_path / "out"
    args = command_args(command, dataset, cli_checkpoint, out)
    code, output = run_glus(args, capsys)
    assert code == 0, output
    summary = (out / SUMMARY_NAME).read_bytes()

    calls: list[str] = []

    def refuse(source: object, **kwargs: object) -> None:
        calls.append(str(source))
        raise AssertionError("the model was loaded for a run that was already complete")

    monkeypatch.setattr(glus_module, "load_glus", refuse)
    code, output = run_glus(args, capsys)
    assert (code, calls) == (0, []), output
    assert f"already complete: {out} (2 expressions)" in " ".join(output.split())
    assert (out / SUMMARY_NAME).read_bytes() == summary, "a finished run's summary is kept as it was"


@pytest.mark.parametrize("command", ["batch", "keyframes"])
def test_a_rerun_with_other_options_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, dataset: Path, cli_checkpoint: Path, command: str
) -> None:
    out = tmp_path / "out"
    args = command_args(command, dataset, cli_checkpoint, out)
    code, output = run_glus(args, capsys)
    assert code == 0, output
    assert json.loads((out / RUN_RECORD_NAME).read_text())["command"] == command
    before = sorted(path.relative_to(out) for path in out.rglob("*"))

    code, output = run_glus([*args, "--mem-stride", "2"], capsys)
    line = assert_one_error(code, output, OutputError.exit_code, "protocol.mem_stride: was 3, now 2")
    assert str(out) in line
    assert sorted(path.relative_to(out) for path in out.rglob("*")) == before, "nothing was touched"


def test_a_batch_folder_from_before_run_records_is_adopted(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, dataset: Path, cli_checkpoint: Path
) -> None:
    """Earlier versions of `glus batch` wrote no run.json: their folders resume, and get one."""
    out = tmp_path / "out"
    args = command_args("batch", dataset, cli_checkpoint, out)
    code, output = run_glus(args, capsys)
    assert code == 0, output
    (out / RUN_RECORD_NAME).unlink()
    (out / SUMMARY_NAME).unlink()
    code, output = run_glus(args, capsys)
    assert code == 0 and "already complete" in output, output
    assert (out / RUN_RECORD_NAME).is_file() and (out / SUMMARY_NAME).is_file()
    summary = json.loads((out / SUMMARY_NAME).read_text())
    assert (summary["expressions_skipped"], summary["model"]) == (2, None)


def test_keyframes_writes_the_shared_summary(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, dataset: Path, cli_checkpoint: Path
) -> None:
    out = tmp_path / "out"
    code, output = run_glus(command_args("keyframes", dataset, cli_checkpoint, out), capsys)
    assert code == 0, output
    summary = json.loads((out / SUMMARY_NAME).read_text())
    assert set(summary) >= SHARED_SUMMARY_KEYS
    assert summary["command"] == "keyframes"
    assert summary["model"]["checkpoint_dir"] == str(cli_checkpoint)
    assert summary["options"]["num_context_frames"] == 1 and summary["options"]["formats"] == ["png"]
    assert (summary["expressions"], summary["expressions_done"], summary["failures"]) == (2, 2, [])
    assert summary["ranking"] == "model_confidence" and summary["kfs_labels"] is None
    assert (
        Path(summary["score_file"]) == out / "keyframes.json" and "load_model" in summary["timings_seconds"]
    )


def test_an_expression_too_long_fails_alone_and_the_others_run(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, dataset: Path, cli_checkpoint: Path
) -> None:
    long_expression = "the small brown dog " * 600  # over 2,048 tokens even in one turn
    expressions = tmp_path / "expressions.csv"
    expressions.write_text(f"video,expression\nclip,{long_expression}\nclip,the red circle\n")
    out = tmp_path / "out"
    args = ["batch", str(dataset / "videos"), "-e", str(expressions), "-o", str(out)]
    code, output = run_glus([*args, "--model", str(cli_checkpoint), *FAST], capsys)
    assert code == EXIT_VIDEOS_FAILED, output
    assert (out / "clip" / "1" / RECORD_NAME).is_file() and not (out / "clip" / "0").exists()
    summary = json.loads((out / SUMMARY_NAME).read_text())
    (failure,) = summary["failures"]
    assert (failure["video"], failure["exp_id"]) == ("clip", "0")
    assert failure["error"].startswith('the expression "the small brown dog') and "2,048" in failure["error"]
    assert (summary["videos"], summary["expressions"], summary["expressions_done"]) == (1, 2, 1)
