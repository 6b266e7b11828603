"""GLUS model parts: checkpoint loading, tokenizer and prompt, language model, SAM2 segmenter, memory bank.

The public entry points are `load_glus` and `GlusModel`; they are imported on first use so that light
modules of this package (prompt, memory bank) can be used without loading transformers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from glus_cli.model.glus import GlusModel, load_glus

__all__ = ["GlusModel", "load_glus"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from glus_cli.model import glus

        return getattr(glus, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
