"""The page itself: one HTML file with its style, script and data inline (no server, no network)."""

from __future__ import annotations

import html
import json
from importlib.resources import files
from pathlib import Path
from typing import Any

from glus_cli.outputs import atomic_write_bytes

REPORT_NAME = "report.html"
_ASSETS = files("glus_cli.report") / "assets"


def render(data: dict[str, Any]) -> str:
    """The HTML page of `data` (as `glus_cli.report.gather.gather` builds it)."""
    # In a <script> element only "</" can end it early: escape every "<" (and the characters that break
    # JavaScript string literals in old engines) so that no expression text can close the element.
    blob = (
        json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        .replace("<", "\\u003c")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )
    page = (_ASSETS / "report.html").read_text(encoding="utf-8")
    for marker, value in (
        ("<!--GLUS:TITLE-->", html.escape(str(data["title"]))),
        ("<!--GLUS:GENERATOR-->", html.escape(str(data["generator"]))),
        ("<!--GLUS:STYLE-->", (_ASSETS / "report.css").read_text(encoding="utf-8")),
        ("<!--GLUS:SCRIPT-->", (_ASSETS / "report.js").read_text(encoding="utf-8")),
    ):
        page = page.replace(marker, value)
    return page.replace("<!--GLUS:DATA-->", blob)  # last: the data may hold the other markers' text


def write_page(root: Path, data: dict[str, Any]) -> Path:
    """Write ``root/report.html`` atomically (a temporary name, then a rename) and return its path.

    Raises:
        OutputError: the file cannot be written.
    """
    path = root / REPORT_NAME
    atomic_write_bytes(path, render(data).encode("utf-8"))
    return path
