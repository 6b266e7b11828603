"""Which scaled-dot-product kernels SAM2's attention runs on: the official ones, or the fastest available.

GLUS's SAM2 copy (sam2 at 0f6515a) chose its kernels once per process in `get_sdpa_settings` and wrapped
its attention in them: flash only on a GPU of compute capability 8.0 or newer (Ampere: flash needs it),
the math kernel on older GPUs and on the CPU; flash has no fp32 kernel, so fp32 means math too. On any
failure it fell back to every kernel with a warning. `sam2==1.1.0` dispatches freely (cuDNN on recent
H100 stacks, CPU flash), which changes low bits; pinning the kernels restores the official ones.

The pin costs on the CPU: one memory-attention cross-attention at 7 memories (4096 queries over 7 x 4096
tokens, width 256) took 16.5 s on the math kernel against 5.0 s on CPU flash in fp32 (max difference
4e-8), 32.6 s against 2.0 s in bf16 (issue #11). So the `fast` schedule, which promises masks to IoU >= 0.999
rather than bits, takes `fastest`: torch's own choice, the fused kernel first. `fast-exact` and
`reference` keep `official`. The schedule hands its choice to each SAM2 call (`attention_for_schedule`).

On the CPU in bf16/fp16, `fastest` runs CPU flash on fp32 copies of the inputs: torch's math kernel computes
half-precision inputs in fp32 (which is why it is twice as slow as in fp32), while CPU flash in bf16 rounds
the attention weights to bf16, and that moved tiny-checkpoint masks to IoU 0.98 against the official
bf16 order of work. Upcast, flash gave the math kernel's masks at fp32 flash speed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal, TypeVar

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.overrides import TorchFunctionMode

from glus_cli import hardware

logger = logging.getLogger(__name__)

AttentionKernels = Literal["official", "fastest"]
_HALF = (torch.bfloat16, torch.float16)
FLASH_MIN_CAPABILITY = 8
"""Compute capability major from which the official copy uses flash attention (Ampere)."""

_NO_KERNEL_MESSAGES = ("No available kernel", "No viable backend")
"""What SDPA raises when every pinned kernel refuses the inputs (CUDA; CPU builds)."""

T = TypeVar("T")
_unavailable: set[tuple[str, str, tuple[str, ...]]] = set()
"""(device, dtype, kernels) pins that failed once in this process: warned about, not retried."""


def attention_for_schedule(schedule: str) -> AttentionKernels:
    """`fastest` for the `fast` schedule (masks to IoU >= 0.999), `official` for the bit-exact ones."""
    return "fastest" if schedule == "fast" else "official"


def sdpa_backends(
    device: torch.device, dtype: torch.dtype, kernels: AttentionKernels
) -> list[SDPBackend] | None:
    """The kernels to pin for SAM2's attention on `device` in `dtype`; None leaves torch's own choice.

    `official`, as the GLUS copy's `get_sdpa_settings`: CUDA flash on sm80+ in bf16/fp16, math on older
    GPUs and in fp32; math on the CPU; MPS has one kernel. `fastest`: None everywhere (torch tries its
    fused kernels first: CPU flash, CUDA flash / memory-efficient / cuDNN).
    """
    if kernels == "fastest" or device.type == "mps":
        return None
    if device.type == "cuda":
        if dtype in _HALF and hardware.cuda_capability(device)[0] >= FLASH_MIN_CAPABILITY:
            return [SDPBackend.FLASH_ATTENTION]
        return [SDPBackend.MATH]
    return [SDPBackend.MATH]


class Fp32Attention(TorchFunctionMode):
    """Within it, `F.scaled_dot_product_attention` on half-precision inputs computes in fp32.

    sam2's attention modules call SDPA themselves, so its inputs are reached through torch's function
    override mechanism; the output is cast back to the inputs' dtype.
    """

    def __torch_function__(
        self, func: Callable, types: object, args: tuple = (), kwargs: dict | None = None
    ) -> object:
        kwargs = kwargs or {}
        if func is not F.scaled_dot_product_attention or args[0].dtype not in _HALF:
            return func(*args, **kwargs)
        query, key, value, *rest = args
        return func(query.float(), key.float(), value.float(), *rest, **kwargs).to(query.dtype)


def run_attention(
    call: Callable[[], T], device: torch.device, dtype: torch.dtype, kernels: AttentionKernels
) -> T:
    """`call()` (a SAM2 module whose attention uses SDPA) on the chosen kernels.

    When the pinned kernels are unavailable (a driver or build without them), warns once in one line and
    runs `call()` on torch's own choice, as the official copy fell back.
    """
    backends = sdpa_backends(device, dtype, kernels)
    key = (str(device), str(dtype), tuple(backend.name for backend in backends or ()))
    if kernels == "fastest" and device.type == "cpu" and dtype in _HALF:
        with Fp32Attention():
            return call()
    if backends is None or key in _unavailable:
        return call()
    try:
        with sdpa_kernel(backends):
            return call()
    except RuntimeError as error:
        if not any(message in str(error) for message in _NO_KERNEL_MESSAGES):
            raise
        _unavailable.add(key)
        names = "/".join(key[2]).lower()
        logger.warning(
            "SAM2 attention: no %s kernel for %s in %s; falling back to torch's choice", names, device, dtype
        )
        return call()
