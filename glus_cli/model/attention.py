"""Which scaled-dot-product kernels SAM2's attention runs on: the official ones, or faster ones.

GLUS's SAM2 copy (sam2 at 0f6515a) chose its kernels once per process in `get_sdpa_settings` and wrapped
its attention in them: flash only on a GPU of compute capability 8.0 or newer (Ampere: flash needs it),
the math kernel on older GPUs and on the CPU; flash has no fp32 kernel, so fp32 means math too. On any
failure it fell back to every kernel with a warning. `sam2==1.1.0` dispatches freely (cuDNN on recent
H100 stacks, CPU flash), which changes low bits; pinning the kernels restores the official ones.

Four choices (`AttentionKernels`):

- `official`: the GLUS copy's kernels, as above. `reference` and `fast-exact` run them.
- `fused`: torch's own choice, its fused kernels first (CPU flash; CUDA flash, memory-efficient, cuDNN).
  On the CPU in bf16/fp16 it runs on fp32 copies of the inputs: CPU flash in bf16 rounds the attention
  weights to bf16.
- `math-chunks` (CPU): the math kernel's own formula, in fp32, over chunks of queries
  (`MathInChunks`). The math kernel computes half-precision inputs in fp32 and materialises the whole
  score matrix (4096 x 28672 in fp32 at 7 memories, 470 MB); a chunk of rows at a time gives the same
  bits with AVX512 kernels, in a fraction of the memory. One bf16 cross-attention at 7 memories took
  1.47 s against the math kernel's 1.69 s and 0.72 s for CPU flash on fp32 copies on a quiet machine
  (3.9 s, 9.9 s and 2.6 s under memory-bus contention; `benchmarks/README.md`) in chunks of 128 MiB;
  the chunks are now of 16 MiB (`CHUNK_SCORES`).
- `fastest`: what the `fast` schedule asks for; `fused` in fp32 (CPU flash there differs from the math
  kernel by about 5e-8, which no mask has shown), `math-chunks` on the CPU in bf16/fp16. CPU flash also
  computes in fp32, but sums in another order, so some outputs round to the neighbouring bf16 value; the
  tiny random model amplified those flips to a per-frame mask IoU of 0.965 against the official bf16 run,
  while the math kernel's order gives its bits (issue #14, `benchmarks/README.md`).

The schedule hands its choice to each SAM2 call (`attention_for_schedule`); `run_attention` applies it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Literal, TypeVar

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.overrides import TorchFunctionMode

from glus_cli import hardware

logger = logging.getLogger(__name__)

AttentionKernels = Literal["official", "fastest", "fused", "math-chunks"]
_HALF = (torch.bfloat16, torch.float16)
FLASH_MIN_CAPABILITY = 8
"""Compute capability major from which the official copy uses flash attention (Ampere)."""
CHUNK_SCORES = 2**22
"""Attention scores (fp32) per chunk of `MathInChunks` at most: 16 MiB (146 queries over 7 x 4096 keys).

Smaller chunks keep more of a chunk's scores in the cache between the product, the softmax and the product
with the values: one cross-attention at 7 memories took 0.56 s in chunks of 16 MiB against 0.68 s in
chunks of 128 MiB (8 MiB: 0.63 s), with the same bits (2-core AMX CPU, `benchmarks/bench_kernels.py`)."""
MIN_CHUNK_ROWS = 64
"""Queries per chunk at least: a product of a few rows takes another kernel, which sums in another order."""

_NO_KERNEL_MESSAGES = ("No available kernel", "No viable backend")
"""What SDPA raises when every pinned kernel refuses the inputs (CUDA; CPU builds)."""

_SDPA_OPTIONS = ("attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa")
"""`F.scaled_dot_product_attention`'s arguments after query, key and value, in order."""

T = TypeVar("T")
_unavailable: set[tuple[str, str, tuple[str, ...]]] = set()
"""(device, dtype, kernels) pins that failed once in this process: warned about, not retried."""


def attention_for_schedule(schedule: str) -> AttentionKernels:
    """`fastest` for the `fast` schedule (masks within `glus_cli.fidelity`), `official` for the exact ones."""
    return "fastest" if schedule == "fast" else "official"


def resolve_kernels(kernels: AttentionKernels, device: torch.device, dtype: torch.dtype) -> AttentionKernels:
    """The kernels `kernels` means on `device` in `dtype`: `fastest` becomes `fused` or `math-chunks`."""
    if kernels != "fastest":
        return kernels
    return "math-chunks" if device.type == "cpu" and dtype in _HALF else "fused"


def sdpa_backends(
    device: torch.device, dtype: torch.dtype, kernels: AttentionKernels
) -> list[SDPBackend] | None:
    """The kernels to pin for SAM2's attention on `device` in `dtype`; None leaves torch's own choice.

    `official`, as the GLUS copy's `get_sdpa_settings`: CUDA flash on sm80+ in bf16/fp16, math on older
    GPUs and in fp32; math on the CPU; MPS has one kernel. Every other choice pins nothing (`math-chunks`
    calls no SDPA kernel; `fused` and `fastest` take torch's order, fused kernels first).
    """
    if kernels != "official" or device.type == "mps":
        return None
    if device.type == "cuda":
        if dtype in _HALF and hardware.cuda_capability(device)[0] >= FLASH_MIN_CAPABILITY:
            return [SDPBackend.FLASH_ATTENTION]
        return [SDPBackend.MATH]
    return [SDPBackend.MATH]


def math_in_chunks(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, scale: float | None = None
) -> torch.Tensor:
    """Attention as torch's math kernel computes it, a chunk of queries at a time, in the inputs' dtype.

    The math kernel (`_scaled_dot_product_attention_math`) casts half-precision inputs to fp32, scales
    both the queries and the keys by the square root of the softmax scale, takes the fp32 scores, their
    softmax and the product with the values, and casts back. Every output row depends on its own query
    row only. With AVX512 kernels the fp32 matrix products sum each row in the same order whatever the
    number of rows, from about 16 rows on (fewer take another kernel), so chunks of equal size, at most
    `CHUNK_SCORES / keys` queries and at least `MIN_CHUNK_ROWS`, give the math kernel's bits without its
    whole score matrix. With AVX2 kernels the order depends on the row count, and a few bf16 outputs in
    a million round the other way (CPU flash on fp32 copies: about 600; `tests/test_devices.py`).
    """
    root_scale = math.sqrt(scale if scale is not None else 1 / math.sqrt(query.shape[-1]))
    keys = (key.float() * root_scale).transpose(-2, -1)
    values = value.float()
    out = torch.empty((*query.shape[:-1], value.shape[-1]), dtype=query.dtype, device=query.device)
    queries = query.shape[-2]
    chunks = -(-queries // max(MIN_CHUNK_ROWS, CHUNK_SCORES // key.shape[-2]))
    rows = -(-queries // chunks)  # equal chunks: no short last one
    for start in range(0, queries, rows):
        scores = torch.matmul(query[..., start : start + rows, :].float() * root_scale, keys)
        out[..., start : start + rows, :] = torch.matmul(torch.softmax(scores, dim=-1), values)
    return out


class MathInChunks(TorchFunctionMode):
    """Within it, `F.scaled_dot_product_attention` runs `math_in_chunks` (the math kernel's formula).

    sam2's attention modules call SDPA themselves, so its inputs are reached through torch's function
    override mechanism. Calls this formula does not cover (a mask, causal, dropout, grouped queries) go
    to the math kernel itself.
    """

    def __torch_function__(
        self, func: Callable, types: object, args: tuple = (), kwargs: dict | None = None
    ) -> object:
        kwargs = kwargs or {}
        if func is not F.scaled_dot_product_attention:
            return func(*args, **kwargs)
        query, key, value, *rest = args
        options = dict(zip(_SDPA_OPTIONS, rest, strict=False)) | kwargs
        covered = options.get("attn_mask") is None and not any(
            options.get(name) for name in ("dropout_p", "is_causal", "enable_gqa")
        )
        if not covered:
            with sdpa_kernel([SDPBackend.MATH]):
                return func(*args, **kwargs)
        scale = options.get("scale")
        return math_in_chunks(query, key, value, scale)


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
    kernels = resolve_kernels(kernels, device, dtype)
    if kernels == "math-chunks":
        with MathInChunks():
            return call()
    if kernels == "fused" and device.type == "cpu" and dtype in _HALF:
        with Fp32Attention():
            return call()
    backends = sdpa_backends(device, dtype, kernels)
    key = (str(device), str(dtype), tuple(backend.name for backend in backends or ()))
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
