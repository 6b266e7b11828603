"""Running the `glus` console script in-process, as users run it, for the CLI tests."""

from __future__ import annotations

import sys

import pytest

from glus_cli.cli.app import main


def run_glus(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Run `glus ARGS` through `main()` (the console-script entry point): exit code, stdout + stderr."""
    capsys.readouterr()
    old_argv = sys.argv
    sys.argv = ["glus", *args]
    try:
        with pytest.raises(SystemExit) as exited:
            main()
    finally:
        sys.argv = old_argv
    captured = capsys.readouterr()
    code = exited.value.code
    return (code if isinstance(code, int) else 1), captured.out + captured.err
