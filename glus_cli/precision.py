"""The numeric choices of a run, by name: compute dtypes and LLM quantisation (torch-free).

The command line, the dataset runners and the Ray driver validate and record these names without
importing torch; `glus_cli.model.glus` turns them into `torch.dtype`s when the model loads.
"""

from __future__ import annotations

from typing import Literal

DType = Literal["auto", "float32", "bfloat16", "float16"]
DTYPES: tuple[str, ...] = ("auto", "float32", "bfloat16", "float16")
"""`auto` picks per device (see `glus_cli.model.glus.resolve_dtype`); the others are torch's names."""

Quantize = Literal["4bit", "8bit"]
QUANTIZATIONS: tuple[str, ...] = ("4bit", "8bit")
"""bitsandbytes quantisation of the LLM's linear layers (SAM2 and CLIP stay in the compute dtype)."""
