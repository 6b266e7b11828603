"""The `glus` command line: `glus segment`, `glus download`, `glus models`, and the dataset commands.

Only argument parsing, progress display and error lines live here; the work is done by the library
modules (`glus_cli.runner`, `glus_cli.hub`, `glus_cli.evaluation`, ...).
"""

from glus_cli.cli.app import app, main

__all__ = ["app", "main"]
