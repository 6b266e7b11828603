"""Running the `glus` console script in-process, as users run it, for the CLI tests."""

from __future__ import annotations

import sys
from pathlib import Path

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


def processes_naming(path: Path) -> list[int]:
    """Ids of the processes whose command line names `path` (a Ray cluster's session folder, say)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            command_line = (proc / "cmdline").read_bytes().decode(errors="replace")
        except OSError:  # the process is gone
            continue
        if str(path) in command_line:
            found.append(int(proc.name))
    return found
