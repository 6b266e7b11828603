"""Terminal output: one stdout console for results, one stderr console for progress, logs and errors.

Output meant for logs stays greppable: when a stream is not a terminal (`2>log`, a pipe, nohup, Slurm),
Rich neither wraps nor truncates on it (tables and folder names keep their full width, unless `COLUMNS`
says otherwise), and log records are plain ``warning: message`` lines. Warnings of other libraries
(bitsandbytes, transformers, sam2, torch; Python's `warnings` as well as their loggers) are shown once
each, however often they are raised, and not at all with ``--quiet``.
"""

from __future__ import annotations

import logging
import os
import warnings
from typing import TextIO

from rich.console import Console, ConsoleDimensions
from rich.logging import RichHandler

# OpenCV and its FFmpeg back-end print their own warnings straight to file descriptor 2 ("moov atom not
# found", "VIDEOIO(FFMPEG): ... can't be used to capture by name") before glus-cli's one-line error about
# the same file. Both read these variables when they first start (after this module is imported, since
# the commands import OpenCV later); a user's own setting wins.
_USER_OPENCV_LOG_LEVEL = os.environ.get("OPENCV_LOG_LEVEL")
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET

_OPENCV_LOG_ERROR, _OPENCV_LOG_WARNING = 2, 3  # cv2.utils.logging.LOG_LEVEL_*

UNWRAPPED_WIDTH = 100_000
"""The width Rich lays out for on a stream that is not a terminal: in effect, no wrapping."""
OWN_LOGGER = "glus_cli"
WARNINGS_LOGGER = "py.warnings"
"""The logger of Python warnings, as `logging.captureWarnings` names it."""
_THIRD_PARTY_CHATTER = ("transformers", "huggingface_hub", "hydra", "PIL", "httpx", "httpx2", "urllib3")


class StreamConsole(Console):
    """A Rich console that lays out for the terminal's width on a terminal, and does not wrap otherwise.

    Rich assumes 80 columns when its stream is not a terminal, so log files and pipes would get folded
    lines and tables with truncated cells. An explicit `COLUMNS` still sets the width.
    """

    @property
    def size(self) -> ConsoleDimensions:
        """The terminal's size; on any other stream, `UNWRAPPED_WIDTH` columns unless `COLUMNS` is set."""
        size = super().size
        if self.is_terminal or "COLUMNS" in os.environ:
            return size
        return ConsoleDimensions(UNWRAPPED_WIDTH, size.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        Console.size.fset(self, new_size)  # type: ignore[attr-defined]


console = StreamConsole()
error_console = StreamConsole(stderr=True)


class ThirdPartyFilter(logging.Filter):
    """Lets each distinct record of another library through once (none below ERROR when `quiet`);
    glus-cli's own records pass untouched."""

    def __init__(self, quiet: bool = False) -> None:
        super().__init__()
        self.quiet = quiet
        self._seen: set[tuple[str, int, str]] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        """Whether `record` is shown."""
        if record.name == OWN_LOGGER or record.name.startswith(OWN_LOGGER + "."):
            return True
        if self.quiet and record.levelno < logging.ERROR:
            return False
        key = (record.name, record.levelno, record.getMessage())
        if key in self._seen:
            return False
        self._seen.add(key)
        return True


class _PlainFormatter(logging.Formatter):
    """``warning: message``, one line per record (a traceback, with --debug, follows on its own lines)."""

    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record)
        return f"{record.levelname.lower()}: {message}"


def _log_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """`warnings.showwarning` replacement: one log record ``Category: first line`` (deduplicated later)."""
    first_line = str(message).strip().splitlines()[0] if str(message).strip() else ""
    logging.getLogger(WARNINGS_LOGGER).warning("%s: %s", category.__name__, first_line)


def configure_logging(level: int, *, quiet: bool = False) -> None:
    """Route library logging and Python warnings to stderr, each other library's warning shown once (none
    with `quiet`); silence third-party progress bars and chatter.

    On a terminal through Rich; otherwise as plain, unwrapped ``level: message`` lines.
    """
    if error_console.is_terminal:
        handler: logging.Handler = RichHandler(
            console=error_console, show_path=False, show_time=False, markup=False
        )
    else:
        handler = logging.StreamHandler(error_console.file)
        handler.setFormatter(_PlainFormatter("%(message)s"))
    handler.addFilter(ThirdPartyFilter(quiet))
    logging.basicConfig(level=level, format="%(message)s", handlers=[handler], force=True)
    for noisy in _THIRD_PARTY_CHATTER:
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    warnings.showwarning = _log_warning
    from huggingface_hub.utils import enable_progress_bars
    from transformers.utils import logging as hf_logging

    if _USER_OPENCV_LOG_LEVEL is None:  # OpenCV may have been imported before this module
        import cv2

        cv2.utils.logging.setLogLevel(_OPENCV_LOG_ERROR if level > logging.DEBUG else _OPENCV_LOG_WARNING)
    # transformers' switch also turns off huggingface-hub's bars, which `glus download` shows; keep those.
    hf_logging.disable_progress_bar()
    enable_progress_bars()
    # transformers logs through its own handler by default: through ours instead, errors only.
    hf_logging.disable_default_handler()
    hf_logging.enable_propagation()
    hf_logging.set_verbosity_error()
