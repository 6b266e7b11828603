"""`--verbose` and `--debug` before or after the subcommand: `glus --debug segment ...` and
`glus segment ... --debug` mean the same.

Click reads an option only where it is declared, so the app declares both on its root callback, and
`with_log_options` adds them to each command too; either place raises the log level, and a command's
`--quiet` also silences other libraries' warnings (`configure_logging`).
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
from collections.abc import Callable
from typing import Annotated, Any, TypeVar, get_type_hints

import typer

from glus_cli.cli.console import configure_logging

R = TypeVar("R")

_LOGGING = "Logging"
VerboseOption = Annotated[
    bool, typer.Option("--verbose", "-v", help="Log what happens, step by step.", rich_help_panel=_LOGGING)
]
DebugOption = Annotated[
    bool, typer.Option("--debug", help="Show tracebacks of unexpected errors.", rich_help_panel=_LOGGING)
]


def apply_log_options(*, verbose: bool = False, debug: bool = False, quiet: bool = False) -> None:
    """Configure logging for these flags; a level set earlier (before the subcommand) is only raised."""
    current = logging.getLogger().level or logging.WARNING
    wanted = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    configure_logging(min(current, wanted), quiet=quiet)
    if debug:
        os.environ["GLUS_DEBUG"] = "1"


def with_log_options(command: Callable[..., R]) -> Callable[..., R]:
    """`command` with `--verbose` and `--debug` options of its own (applied before it runs, with its
    `--quiet` if it has one)."""
    hints = get_type_hints(command, include_extras=True)
    signature = inspect.signature(command)
    parameters = [
        parameter.replace(annotation=hints.get(name, parameter.annotation))
        for name, parameter in signature.parameters.items()
    ]
    parameters += [
        inspect.Parameter("verbose", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=VerboseOption),
        inspect.Parameter("debug", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=DebugOption),
    ]

    @functools.wraps(command)
    def with_options(*args: Any, verbose: bool = False, debug: bool = False, **values: Any) -> R:
        quiet = bool(values.get("quiet", False))
        if verbose or debug or quiet:
            apply_log_options(verbose=verbose, debug=debug, quiet=quiet)
        return command(*args, **values)

    with_options.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    with_options.__annotations__ = {parameter.name: parameter.annotation for parameter in parameters}
    return with_options
