"""What the device of a run offers: native bf16, GPU compute capability, memory available for the model.

Everything is asked of torch (and psutil for RAM), never parsed from /proc, so it means what torch's
kernels will do. torch is imported inside the functions: importing this module stays cheap.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from glus_cli.precision import DeviceCapabilities

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)


def probe_device(device: torch.device) -> DeviceCapabilities:
    """Whether `device` computes bf16 natively, and what was found (for `precision.plan_precision`)."""
    if device.type == "cuda":
        return _probe_cuda(device)
    if device.type == "mps":
        return _probe_mps()
    return _probe_cpu()


def _probe_cpu() -> DeviceCapabilities:
    import torch

    # The kernels torch dispatches to (AVX2, AVX512, ...), and the bf16 instructions oneDNN uses.
    dispatch = torch.backends.cpu.get_cpu_capability()
    amx = bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)())
    avx512_bf16 = bool(getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)())
    found = [name for name, present in (("AMX", amx), ("AVX512-BF16", avx512_bf16)) if present]
    detail = f"{' and '.join(found) or 'no AMX or AVX512-BF16'}, {dispatch} kernels"
    return DeviceCapabilities("cpu", bool(found), detail)


def cuda_capability(device: torch.device) -> tuple[int, int]:
    """(major, minor) compute capability of a CUDA device: (8, 0) for an A100, (7, 5) for a T4."""
    import torch

    return tuple(torch.cuda.get_device_capability(device))  # type: ignore[return-value]


def _probe_cuda(device: torch.device) -> DeviceCapabilities:
    import torch

    major, minor = cuda_capability(device)
    with torch.cuda.device(device):
        native = bool(torch.cuda.is_bf16_supported(including_emulation=False))
    return DeviceCapabilities("cuda", native, f"{torch.cuda.get_device_name(device)}, sm{major}{minor}")


def _probe_mps() -> DeviceCapabilities:
    import torch

    try:  # bf16 on MPS depends on the macOS and torch versions: try it.
        probe = torch.ones((2, 2), dtype=torch.bfloat16, device="mps")
        native = bool((probe @ probe).sum().item() == 8)
    except (RuntimeError, TypeError) as error:
        logger.debug("MPS bf16 probe failed: %s", error)
        native = False
    return DeviceCapabilities("mps", native, "bf16 matmul works" if native else "bf16 matmul unsupported")


def available_memory(device: torch.device) -> tuple[int, str]:
    """Bytes the model can use on `device` and what they are: free GPU memory, or available RAM.

    On CUDA, `torch.cuda.mem_get_info` (free memory of the whole GPU, other processes included); on the
    CPU and on Apple silicon (unified memory), psutil's `available` RAM.
    """
    if device.type == "cuda":
        import torch

        free, _ = torch.cuda.mem_get_info(device)
        return int(free), f"free on {device}"
    import psutil

    return int(psutil.virtual_memory().available), "available RAM"
