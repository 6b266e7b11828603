"""Logs people can grep: other libraries' warnings once each (none with -q), no wrapping or truncation
when the stream is not a terminal, and --verbose / --debug after the subcommand too."""

from __future__ import annotations

import io
import logging
import os
import warnings
from pathlib import Path

import pytest
from cli_helpers import run_glus
from rich.table import Table

import glus_cli.runner as runner_module
from glus_cli.cli.console import StreamConsole, configure_logging
from glus_cli.testing.videos import write_frame_folder

pytest_plugins = ["tests.cli_fixtures"]
pytestmark = pytest.mark.usefixtures("cli_environment")

LONG_LINE = "grep-me-" + "x" * 192


@pytest.fixture(autouse=True)
def _no_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    """No COLUMNS: the width Rich picks by itself is under test."""
    monkeypatch.delenv("COLUMNS", raising=False)


def _warn_100_times() -> None:
    for _ in range(100):
        warnings.warn(
            "MatMul8bitLt: inputs will be cast from torch.float32 to float16", UserWarning, stacklevel=1
        )
        logging.getLogger("bitsandbytes.cextension").warning("Failed to load CPU gemm_4bit_forward")


def test_third_party_warnings_once_each(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("always")  # as libraries that reset the filters leave them
        _warn_100_times()
    for _ in range(2):
        logging.getLogger("glus_cli.test").warning("our own line")
    err = capsys.readouterr().err
    assert err.count("MatMul8bitLt") == 1, err
    assert "warning: UserWarning: MatMul8bitLt: inputs will be cast" in err
    assert err.count("gemm_4bit_forward") == 1, err
    assert err.count("our own line") == 2, err  # glus-cli's own lines are not deduplicated


def test_quiet_silences_third_party_warnings(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(logging.WARNING, quiet=True)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        _warn_100_times()
    logging.getLogger("sam2").error("a real error")
    err = capsys.readouterr().err
    assert "MatMul8bitLt" not in err and "gemm_4bit_forward" not in err, err
    assert "error: a real error" in err


@pytest.mark.parametrize(("quiet", "expected"), [(False, 1), (True, 0)])
def test_segment_shows_a_warning_raised_every_frame_once(
    cli_checkpoint: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    quiet: bool,
    expected: int,
) -> None:
    write_frame_folder(Path("frames"), 3, size=(32, 48))
    real_add = runner_module.PreviewSheet.add

    def add(self: object, result: object) -> None:
        for _ in range(100):
            warnings.warn("a library complains on every frame", UserWarning, stacklevel=1)
        real_add(self, result)

    monkeypatch.setattr(runner_module.PreviewSheet, "add", add)
    args = ["segment", "frames", "the dog", "--model", str(cli_checkpoint), "--device", "cpu", "-o", "out"]
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        code, output = run_glus([*args, *(["-q"] if quiet else [])], capsys)
    assert code == 0, output
    assert output.count("a library complains on every frame") == expected, output


def test_a_long_log_line_is_one_line_without_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(logging.WARNING)
    logging.getLogger("glus_cli.test").warning(LONG_LINE)
    lines = capsys.readouterr().err.splitlines()
    assert lines == [f"warning: {LONG_LINE}"], lines


def test_tables_keep_long_cells_without_a_terminal() -> None:
    stream = io.StringIO()
    table = Table(title="glus segment")
    table.add_column("folder")
    table.add_column("seconds")
    table.add_row(LONG_LINE, "1.0")
    StreamConsole(file=stream).print(table)
    assert any(LONG_LINE in line for line in stream.getvalue().splitlines()), stream.getvalue()


def test_summary_table_keeps_folder_names_without_a_terminal(
    cli_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_frame_folder(Path("frames"), 2, size=(32, 48))
    expression = "the small brown dog that jumps over the fence first and then runs away to the left"
    args = ["segment", "frames", expression, "--model", str(cli_checkpoint), "--device", "cpu", "-o", "out"]
    code, output = run_glus(args, capsys)
    assert code == 0, output
    (folder,) = [path.name for path in Path("out").iterdir() if path.is_dir()]
    assert len(folder) > 40
    assert any(folder in line and expression in line for line in output.splitlines()), output


def test_verbose_after_the_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    code, quiet_output = run_glus(["download", "Swindl/GLUS-A"], capsys)
    assert code != 0
    assert "resolving checkpoint" not in quiet_output
    for args in (["-v", "download", "Swindl/GLUS-A"], ["download", "Swindl/GLUS-A", "-v"]):
        code, output = run_glus(args, capsys)
        assert code != 0
        assert "info: resolving checkpoint Swindl/GLUS-A" in output, (args, output)


def test_debug_after_the_subcommand(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GLUS_DEBUG", raising=False)
    code, output = run_glus(["models", "--debug"], capsys)
    assert code == 0, output
    assert os.environ.get("GLUS_DEBUG") == "1"
