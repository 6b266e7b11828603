"""Host <-> device copies that do not stall the GPU's queue more than the protocol needs.

A plain `tensor.to("cuda")` from pageable host memory and a `tensor.cpu()` each wait until the GPU has
finished everything queued before them, so the GPU then idles while Python launches the next kernels.
Here, uploads go through pinned memory with `non_blocking=True` (no wait), and downloads of several
tensors share one wait. On the CPU (and MPS) these are plain copies, or no copy at all: the arithmetic is
the same whichever path runs, so results do not depend on it.
"""

from __future__ import annotations

import numpy as np
import torch


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """`tensor` (on the CPU) on `device`; on CUDA through pinned memory, without waiting for the GPU.

    The copy is queued on the current stream, so later kernels on that stream see it. The pinned
    staging buffer may be dropped at once: torch's pinned-memory allocator keeps it until the copy ran.
    """
    if device.type != "cuda":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)


def to_host(*tensors: torch.Tensor) -> list[np.ndarray]:
    """NumPy copies of `tensors`, with a single wait for the GPU however many tensors there are."""
    cuda = [t for t in tensors if t.device.type == "cuda"]
    if not cuda:
        return [t.detach().cpu().numpy() for t in tensors]
    staged = []
    for tensor in tensors:
        if tensor.device.type == "cuda":
            host = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
            host.copy_(tensor, non_blocking=True)
            staged.append(host)
        else:
            staged.append(tensor.detach().cpu())
    torch.cuda.current_stream(cuda[0].device).synchronize()  # the one wait: the copies are on this stream
    return [host.numpy() for host in staged]
