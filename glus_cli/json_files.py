"""The one JSON reader: the user's files (expressions, key-frame scores, ground truth) and checkpoints'.

Every caller reads through here, so a missing, unreadable or malformed file gives the same one-line
`GlusError` wherever it is met; the caller only says how to name the file (``what``) and which error it
is (an `InputError` for the user's files, a `CheckpointError` for a checkpoint's). Text is UTF-8; a
leading byte-order mark, as some Windows editors write, is dropped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from glus_cli.errors import GlusError, InputError


def read_text(path: Path, *, what: str = "", error: type[GlusError] = InputError) -> str:
    """The text of `path`.

    Args:
        path: the file.
        what: how to name the file in errors, e.g. "expressions file " (default: just its path).
        error: the `GlusError` subclass to raise.

    Raises:
        error: the file is missing, unreadable, or not UTF-8.
    """
    if not path.is_file():
        raise error(f"{what}{path} does not exist")
    try:
        return path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise error(f"cannot read {what}{path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise error(f"cannot read {what}{path}: it is not UTF-8 text ({exc})") from exc


def parse_json(text: str, path: Path, *, what: str = "", error: type[GlusError] = InputError) -> Any:
    """`text`, read from `path`, parsed as JSON (for callers that read the text themselves).

    Raises:
        error: the text is not JSON.
    """
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{what}{path} is not valid JSON ({exc})") from exc


def read_json(path: Path, *, what: str = "", error: type[GlusError] = InputError) -> Any:
    """The JSON value stored in `path` (arguments as `read_text`).

    Raises:
        error: the file is missing, unreadable, or not JSON.
    """
    return parse_json(read_text(path, what=what, error=error), path, what=what, error=error)


def read_json_object(path: Path, *, what: str = "", error: type[GlusError] = InputError) -> dict[str, Any]:
    """The JSON object stored in `path` (arguments as `read_text`).

    Raises:
        error: the file is missing, unreadable, not JSON, or holds something other than an object.
    """
    data = read_json(path, what=what, error=error)
    if not isinstance(data, dict):
        raise error(f"{what}{path} holds a JSON {type(data).__name__}, not an object")
    return data
