"""User-facing errors.

Every problem a user can cause or meet (bad input, a wrong checkpoint, no network, a full disk) is raised
as a :class:`GlusError` subclass with a message that reads as one complete line. The CLI prints that line
and exits with the class's ``exit_code``; any other exception is a bug.
"""

from __future__ import annotations


class GlusError(Exception):
    """Base class: a problem explained to the user in one line, never with a traceback."""

    exit_code = 1


class InputError(GlusError):
    """A video, frame folder, expression or option the user gave cannot be used."""

    exit_code = 2


class CheckpointError(GlusError):
    """A checkpoint (folder or Hub id) is missing, incomplete, or not in the GLUS layout."""

    exit_code = 3


class NetworkError(GlusError):
    """Something had to be downloaded but the network (or the Hub) is unavailable or offline mode is on."""

    exit_code = 4


class OutputError(GlusError):
    """Outputs cannot be written: the folder exists, the disk is full, permissions."""

    exit_code = 5


class ResourceError(GlusError):
    """The device ran out of memory or is unavailable."""

    exit_code = 6


class SmokeTestError(GlusError):
    """`glus check --smoke`: the end-to-end run on a tiny checkpoint failed or left out a file."""

    exit_code = 7


def one_line(error: BaseException, *, with_type: bool = False, limit: int | None = None) -> str:
    """`error`'s message as one line: white space (newlines included) collapsed, never empty.

    Args:
        error: the exception to describe.
        with_type: start with the exception's class name (`OSError: ...`), for errors from libraries
            whose messages do not say what went wrong on their own.
        limit: cut the line to at most this many characters, ending in "...".
    """
    message = " ".join(str(error).split())
    name = type(error).__name__
    text = (f"{name}: {message}" if message else name) if with_type else (message or name)
    if limit is not None and len(text) > limit:
        text = text[: limit - 3] + "..."
    return text
