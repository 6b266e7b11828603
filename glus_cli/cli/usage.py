"""Usage errors as Click words them, naming the option: `Invalid value for '--stride': 0 is not in the
range x>=1.`

Typer (>= 0.20) validates option values with pydantic and passes pydantic's own message on ("Input should
be greater than or equal to 1", "Value error, 'fp64' is not one of ..."), which names neither the option
nor the value. The pydantic error is kept as the exception's cause, so its structured form (type, input,
bounds) can be worded again as Click's own range and choice types word it.
"""

from __future__ import annotations

from typing import Any

_RANGE_SYMBOLS = {
    "greater_than_equal": ("ge", "x>={}"),
    "greater_than": ("gt", "x>{}"),
    "less_than_equal": ("le", "x<={}"),
    "less_than": ("lt", "x<{}"),
}
_VALUE_ERROR_PREFIX = "Value error, "


def usage_message(error: Exception) -> str:
    """The one-line message of a Click usage error, Click-style, naming the option when there is one."""
    detail = _validation_detail(error.__cause__)
    if detail is not None and hasattr(error, "message"):
        error.message = detail  # type: ignore[attr-defined]
    format_message = getattr(error, "format_message", None)
    message = format_message() if callable(format_message) else str(error)
    return " ".join(message.split())


def _validation_detail(cause: BaseException | None) -> str | None:
    """Click's wording of the first error of a pydantic `ValidationError`, or None for anything else."""
    errors = getattr(cause, "errors", None)
    if cause is None or type(cause).__name__ != "ValidationError" or not callable(errors):
        return None
    found: list[dict[str, Any]] = errors()
    if not found:
        return None
    first = found[0]
    kind, context, value = first.get("type"), first.get("ctx") or {}, first.get("input")
    if kind in _RANGE_SYMBOLS:
        key, template = _RANGE_SYMBOLS[kind]
        return f"{value} is not in the range {template.format(context.get(key))}."
    if kind == "value_error" and "error" in context:
        return str(context["error"])
    message = str(first.get("msg", ""))
    return message.removeprefix(_VALUE_ERROR_PREFIX) or None
