"""The Typer application and its error edge: every failure becomes one line and a non-zero exit code."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import sys
from typing import Annotated

import typer

from glus_cli import __version__
from glus_cli.cli.batch import batch
from glus_cli.cli.check import check
from glus_cli.cli.console import configure_logging, error_console
from glus_cli.cli.evaluate import evaluate_command
from glus_cli.cli.export import export_command
from glus_cli.cli.keyframes import keyframes
from glus_cli.cli.log_options import DebugOption, VerboseOption, with_log_options
from glus_cli.cli.models import download, models
from glus_cli.cli.report import report
from glus_cli.cli.segment import segment
from glus_cli.cli.usage import usage_message
from glus_cli.errors import GlusError, OutputError, ResourceError, one_line

app = typer.Typer(
    name="glus",
    help=(
        "Segment an object in a video from a sentence with GLUS (CVPR 2025).\n\n"
        'Example: glus segment video.mp4 "the dog that jumps first" --format png --format overlay'
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

# The commands, in the order `glus --help` lists them; each is a plain function in its topic module.
app.command()(segment)
app.command()(batch)
app.command()(keyframes)
app.command("eval")(evaluate_command)
app.command("export")(export_command)
app.command()(report)
app.command()(download)
app.command()(models)
app.command()(check)
for _command in app.registered_commands:  # --verbose and --debug after the subcommand too
    _command.callback = with_log_options(_command.callback)

EXIT_INTERRUPTED = 130
EXIT_INTERNAL = 70
_INTERRUPTED = (
    "interrupted; expression folders without an expression.json are partial: "
    "rerun the same command with the same --output-dir to finish them"
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"glus-cli {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    verbose: VerboseOption = False,
    debug: DebugOption = False,
) -> None:
    """glus: referring video object segmentation with GLUS."""
    configure_logging(logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING)
    if debug:
        os.environ["GLUS_DEBUG"] = "1"


def _as_user_error(error: BaseException) -> GlusError | None:
    """Errors from the environment that are the user's to fix, not bugs."""
    if isinstance(error, MemoryError):
        return ResourceError(
            "out of memory (RAM): try --dtype bfloat16, --quantize 8bit, or a smaller --max-frames"
        )
    if (
        type(error).__name__ == "OutOfMemoryError"
    ):  # torch.cuda.OutOfMemoryError, without importing torch here
        return ResourceError(
            "out of GPU memory: try --quantize 4bit/8bit, --dtype bfloat16, or free the GPU ("
            + one_line(error)[:120]
            + ")"
        )
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return OutputError(f"the disk is full: {one_line(error)}")
    return None


def _print_error(message: str, prefix: str = "error:") -> None:
    """One line on stderr, never wrapped at the terminal width (scripts grep for it)."""
    from rich.markup import escape

    error_console.print(f"[red]{prefix}[/] {escape(message)}", highlight=False, soft_wrap=True)


def _click_exception_types() -> tuple[type[Exception], ...]:
    """Click's usage-error base class: Typer >= 0.20 vendors Click as `typer._click`, older Typer uses it."""
    types: list[type[Exception]] = []
    vendored = getattr(getattr(typer, "_click", None), "exceptions", None)
    if vendored is not None:
        types.append(vendored.ClickException)
    try:
        import click
    except ImportError:  # pragma: no cover - Typer without Click
        pass
    else:
        types.append(click.ClickException)
    return tuple(types)


def _show_click_exception(error: Exception) -> int:
    """Print a usage error as Click's usage line plus one `error:` line; return its exit code."""
    code = int(getattr(error, "exit_code", 2))
    if type(error).__name__ == "NoArgsIsHelpError":  # `glus` alone: the help text
        error.show()  # type: ignore[attr-defined]
        return code
    ctx = getattr(error, "ctx", None)
    if ctx is not None:
        error_console.print(ctx.get_usage(), markup=False, highlight=False, soft_wrap=True)
        error_console.print(f"Try '{ctx.command_path} --help' for help.", markup=False, highlight=False)
    _print_error(usage_message(error))
    return code


def _exit(code: int) -> None:
    """Exit with `code`; a Ctrl-C from here on (while Python joins threads and runs its exit handlers)
    ends the process as an interrupt, without a traceback and without exit code 0."""
    with contextlib.suppress(ValueError):  # not the main thread: Python handles signals there only
        signal.signal(signal.SIGINT, signal.SIG_DFL)
    sys.exit(code)


def main() -> None:
    """Console-script entry point: run the app and turn every failure into one line on stderr."""
    try:
        # Without standalone mode Typer returns Exit codes instead of exiting, and turns Ctrl-C into
        # Exit(130): exit with the code, explaining an interruption.
        result = app(standalone_mode=False)
    except typer.Exit as done:
        _exit(done.exit_code)
    except typer.Abort:
        _print_error("aborted")
        _exit(EXIT_INTERRUPTED)
    except KeyboardInterrupt:
        _print_error(_INTERRUPTED)
        _exit(EXIT_INTERRUPTED)
    except GlusError as error:
        _print_error(one_line(error))
        _exit(error.exit_code)
    except Exception as error:  # the last line of defence: never a traceback for users
        if isinstance(error, _click_exception_types()):
            _exit(_show_click_exception(error))
        user_error = _as_user_error(error)
        if user_error is not None:
            _print_error(one_line(user_error))
            _exit(user_error.exit_code)
        if os.environ.get("GLUS_DEBUG"):
            raise
        _print_error(
            f"{type(error).__name__}: {one_line(error)} "
            "(a bug in glus-cli; rerun with --debug for the traceback and report it)",
            prefix="internal error:",
        )
        _exit(EXIT_INTERNAL)
    if isinstance(result, int) and not isinstance(result, bool) and result:
        if result == EXIT_INTERRUPTED:
            _print_error(_INTERRUPTED)
        _exit(result)
    _exit(0)
