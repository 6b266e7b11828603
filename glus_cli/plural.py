"""Counts in words for people: ``1 frame``, ``2 frames``, ``1 video``."""

from __future__ import annotations


def plural(count: int, noun: str, plural_noun: str | None = None) -> str:
    """`count` and `noun`, in the plural unless `count` is 1 (`plural_noun`, default `noun` + "s")."""
    return f"{count} {noun if count == 1 else plural_noun or noun + 's'}"
