"""Resumable `glus segment`: rerunning the same command with the same -o finishes an interrupted run.

An expression folder with its `expression.json` is complete and kept; any other is redone; the result is
the same files as an uninterrupted run. A rerun with other settings into that folder is refused.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from glus_cli import pipeline, resume, runner
from glus_cli.cli.app import EXIT_INTERRUPTED, main
from glus_cli.errors import OutputError
from glus_cli.run_record import RUN_RECORD_NAME, first_difference
from glus_cli.testing.videos import write_synthetic_video
from tests.cli_helpers import run_glus

pytest_plugins = ["tests.cli_fixtures"]
pytestmark = pytest.mark.usefixtures("cli_environment")

FAST = ["--context-frames", "1", "--query-frames", "1", "--device", "cpu", "--quiet"]
EXPRESSIONS = ["the red circle", "the green square"]
RUN_DEPENDENT = {"seconds", "output_dir"}
"""`expression.json` keys that differ between two runs of the same command (time, output folder)."""


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_video(tmp_path_factory.mktemp("video") / "clip.mp4", 3, size=(40, 56), fps=5.0)


def segment_args(video: Path, checkpoint: Path, out: Path, *extra: str) -> list[str]:
    formats = ["-f", "png", "-f", "rle", "-f", "palette"]
    return [
        "segment",
        str(video),
        *EXPRESSIONS,
        "-o",
        str(out),
        "--model",
        str(checkpoint),
        *formats,
        *FAST,
        *extra,
    ]


def contents(out: Path) -> dict[str, object]:
    """Every file under `out` by relative path: bytes, or for `expression.json` its run-independent keys;
    `summary.json` (timings, memory) and `report.html` (which shows them) by name only."""
    found: dict[str, object] = {}
    for path in sorted(out.rglob("*")):
        if not path.is_file():
            continue
        name = str(path.relative_to(out))
        if path.name == resume.RECORD_NAME:
            record = json.loads(path.read_text())
            found[name] = {key: value for key, value in record.items() if key not in RUN_DEPENDENT}
        elif path.name in ("summary.json", "report.html"):
            found[name] = "present"
        else:
            found[name] = path.read_bytes()
    return found


@pytest.fixture(scope="module")
def uninterrupted(
    tmp_path_factory: pytest.TempPathFactory, cli_checkpoint: Path, video: Path
) -> dict[str, object]:
    """The files of the same command run without interruption."""
    out = tmp_path_factory.mktemp("whole") / "out"
    old_argv, sys.argv = sys.argv, ["glus", *segment_args(video, cli_checkpoint, out)]
    stderr = io.StringIO()
    try:
        with (
            contextlib.redirect_stdout(io.StringIO()),
            contextlib.redirect_stderr(stderr),
            pytest.raises(SystemExit) as exited,
        ):
            main()
    finally:
        sys.argv = old_argv
    assert exited.value.code == 0, stderr.getvalue()
    return contents(out)


def interrupt_after(monkeypatch: pytest.MonkeyPatch, results: int) -> None:
    """Ctrl-C after `results` frame results of the run."""
    real = pipeline.segment_video

    def interrupted(*args: object, **kwargs: object) -> Iterator[object]:
        for count, result in enumerate(real(*args, **kwargs)):
            if count == results:
                raise KeyboardInterrupt
            yield result

    monkeypatch.setattr(pipeline, "segment_video", interrupted)


def test_rerun_finishes_an_interrupted_run(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    cli_checkpoint: Path,
    video: Path,
    uninterrupted: dict[str, object],
) -> None:
    out = tmp_path / "out"
    real = pipeline.segment_video
    interrupt_after(monkeypatch, 3)
    code, output = run_glus(segment_args(video, cli_checkpoint, out), capsys)
    assert code == EXIT_INTERRUPTED, output
    assert "nothing partial" not in output and "partial" in output and "--output-dir" in output
    assert (out / RUN_RECORD_NAME).is_file()
    assert not list(out.rglob(resume.RECORD_NAME)) and any(out.rglob("*.png"))  # partial, none complete
    monkeypatch.setattr(pipeline, "segment_video", real)

    code, output = run_glus(segment_args(video, cli_checkpoint, out), capsys)
    assert code == 0, output
    assert contents(out) == uninterrupted


def test_complete_expressions_are_kept(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    cli_checkpoint: Path,
    video: Path,
    uninterrupted: dict[str, object],
) -> None:
    """Killed between the two expressions' records: the first folder is kept as it is, the second redone."""
    out = tmp_path / "out"
    real = runner.write_json_atomic

    def killed_at_the_second_record(path: Path, obj: object) -> None:
        if path.parent.name.startswith("01-"):
            raise KeyboardInterrupt
        real(path, obj)

    monkeypatch.setattr(runner, "write_json_atomic", killed_at_the_second_record)
    code, output = run_glus(segment_args(video, cli_checkpoint, out), capsys)
    assert code == EXIT_INTERRUPTED, output
    monkeypatch.setattr(runner, "write_json_atomic", real)
    first, second = out / "00-the-red-circle", out / "01-the-green-square"
    assert (first / resume.RECORD_NAME).is_file() and not (second / resume.RECORD_NAME).exists()
    kept = {path.name: path.stat().st_mtime_ns for path in first.rglob("*")}

    calls: list[int] = []
    real_segment = pipeline.segment_video

    def counted(model: object, video_source: object, expressions: list[str], *args: object, **kw: object):
        calls.append(len(expressions))
        return real_segment(model, video_source, expressions, *args, **kw)

    monkeypatch.setattr(pipeline, "segment_video", counted)
    code, output = run_glus(segment_args(video, cli_checkpoint, out), capsys)
    assert code == 0, output
    assert calls == [1], "only the unfinished expression is segmented again"
    assert {path.name: path.stat().st_mtime_ns for path in first.rglob("*")} == kept
    assert contents(out) == uninterrupted
    summary = json.loads((out / "summary.json").read_text())
    assert [record["text"] for record in summary["expressions"]] == EXPRESSIONS


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (["--stride", "2"], "stride"),
        (["--schedule", "reference"], "schedule"),
        (["-f", "overlay"], "formats"),
    ],
)
def test_rerun_with_other_settings_is_refused(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    cli_checkpoint: Path,
    video: Path,
    change: list[str],
    named: str,
) -> None:
    out = tmp_path / "out"
    interrupt_after(monkeypatch, 1)
    code, _ = run_glus(segment_args(video, cli_checkpoint, out), capsys)
    assert code == EXIT_INTERRUPTED
    before = sorted(str(path) for path in out.rglob("*"))

    code, output = run_glus(segment_args(video, cli_checkpoint, out, *change), capsys)
    assert code == OutputError.exit_code, output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "other settings" in errors[0] and named in errors[0], output
    assert sorted(str(path) for path in out.rglob("*")) == before, "a refused rerun touches nothing"


def test_rerun_with_other_expressions_or_source_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, cli_checkpoint: Path, video: Path
) -> None:
    out = tmp_path / "out"
    code, output = run_glus(segment_args(video, cli_checkpoint, out), capsys)
    assert code == 0, output
    other = [
        "segment",
        str(video),
        "the blue triangle",
        "-o",
        str(out),
        "--model",
        str(cli_checkpoint),
        *FAST,
    ]
    code, output = run_glus(other, capsys)
    assert code == OutputError.exit_code and "expressions" in output, output
    copy = tmp_path / "copy.mp4"
    copy.write_bytes(video.read_bytes())
    code, output = run_glus(segment_args(copy, cli_checkpoint, out), capsys)
    assert code == OutputError.exit_code and "source" in output, output


def test_first_difference_names_the_setting() -> None:
    before = {"protocol": {"stride": 1, "max_frames": None}, "expressions": ["a"]}
    assert first_difference(before, before) is None
    assert first_difference(before, {**before, "protocol": {"stride": 2, "max_frames": None}}) == (
        "protocol.stride: was 1, now 2"
    )
    assert first_difference(before, {**before, "expressions": ["b"]}) == 'expressions: was ["a"], now ["b"]'


def test_ctrl_c_while_python_exits_is_no_traceback_and_no_success(tmp_path: Path) -> None:
    """A Ctrl-C that lands after the work, while Python shuts down, ends the process as an interrupt."""
    script = textwrap.dedent(
        """
        import atexit, os, signal, sys
        from glus_cli.cli.app import main
        atexit.register(lambda: os.kill(os.getpid(), signal.SIGINT))
        sys.argv = ["glus", "--version"]
        main()
        """
    )
    root = Path(__file__).resolve().parents[1]  # this checkout's glus_cli, not an installed one
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=root
    )
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode != 0
    assert done.stdout.startswith("glus-cli ")
