"""The numeric choices of a run, by name: compute dtypes, LLM quantisation, the precision plan (torch-free).

The command line, the dataset runners and the Ray driver validate and record these names without
importing torch; `glus_cli.model.glus` turns them into `torch.dtype`s when the model loads.

`plan_precision` turns `--dtype auto` into a dtype for the device at hand, with the reason, from what
`glus_cli.hardware.probe_device` found out about that device:

- CUDA: bf16 where the GPU computes it natively (Ampere and newer), the official setting; fp16 otherwise
  (T4, V100, RTX 20xx emulate bf16 slowly or not at all).
- CPU: bf16 where the CPU has native bf16 instructions (AMX or AVX512-BF16): half the memory and several
  times the matrix-product speed of fp32 there; fp32 otherwise, where bf16 is emulated and slower.
- MPS: bf16 where the installed torch and macOS run it (half of fp32's 29 GB for the 7B model), else fp32.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from glus_cli.errors import InputError

DType = Literal["auto", "float32", "bfloat16", "float16", "fp32", "bf16", "fp16"]
DTYPES: tuple[str, ...] = ("auto", "float32", "bfloat16", "float16")
"""`auto` picks per device (`plan_precision`); the others are torch's names."""
DTYPE_SPELLINGS: dict[str, str] = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
"""Short spellings, as the official scripts' `--precision` takes them."""

Quantize = Literal["4bit", "8bit"]
QUANTIZATIONS: tuple[str, ...] = ("4bit", "8bit")
"""bitsandbytes quantisation of the LLM's linear layers (SAM2 and CLIP stay in the compute dtype)."""


def canonical_dtype(name: str | None) -> str:
    """torch's name of a dtype spelling (`bf16` -> `bfloat16`); `auto` for None or `auto`.

    Raises:
        InputError: an unknown spelling.
    """
    if name is None or name == "auto":
        return "auto"
    name = DTYPE_SPELLINGS.get(name, name)
    if name not in DTYPES[1:]:
        spellings = ", ".join((*DTYPES, *DTYPE_SPELLINGS))
        raise InputError(f"unknown dtype {name!r}; use {spellings}")
    return name


@dataclass(frozen=True)
class DeviceCapabilities:
    """What a device offers for the precision plan (found by `glus_cli.hardware.probe_device`).

    Attributes:
        device_type: `cpu`, `cuda` or `mps`.
        native_bf16: whether bf16 matrix products run in hardware (AMX / AVX512-BF16 on a CPU, sm80+ on
            CUDA, a torch/macOS that runs bf16 on MPS).
        detail: what was found, in words, e.g. `AMX and AVX512-BF16` or `NVIDIA T4, sm75`.
    """

    device_type: str
    native_bf16: bool
    detail: str


@dataclass(frozen=True)
class PrecisionPlan:
    """The compute dtype of a run and why it was chosen (recorded in the run header and summary.json).

    Attributes:
        dtype: torch's name: `float32`, `bfloat16` or `float16`.
        reason: one sentence, e.g. `auto: this CPU has no native bf16 (AVX2), bf16 would be emulated`.
    """

    dtype: str
    reason: str


def plan_precision(requested: str | None, capabilities: DeviceCapabilities) -> PrecisionPlan:
    """The dtype for `requested` (`auto`, None or a spelling) on a device with `capabilities`."""
    name = canonical_dtype(requested)
    device, detail = capabilities.device_type, capabilities.detail
    if name != "auto":
        return PrecisionPlan(name, f"asked for with --dtype ({device}: {detail})")
    if device == "cuda":
        if capabilities.native_bf16:
            return PrecisionPlan("bfloat16", f"auto: the GPU has native bf16 ({detail}), as the official run")
        return PrecisionPlan("float16", f"auto: the GPU has no native bf16 ({detail}), fp16 instead")
    if device == "cpu":
        if capabilities.native_bf16:
            return PrecisionPlan("bfloat16", f"auto: the CPU has native bf16 ({detail}), as the official run")
        return PrecisionPlan("float32", f"auto: the CPU has no native bf16 ({detail}), bf16 is emulated")
    if capabilities.native_bf16:
        return PrecisionPlan("bfloat16", f"auto: {device} runs bf16 here ({detail}), half of fp32's memory")
    return PrecisionPlan("float32", f"auto: {device} does not run bf16 here ({detail})")
