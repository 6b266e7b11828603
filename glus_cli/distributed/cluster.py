"""Starting or joining the Ray cluster, and sizing the workers to its nodes.

`--ray local` starts a cluster on this machine for the run and always shuts it down, Ctrl-C and
SIGTERM/SIGHUP included (a driver that dies abruptly would leave Ray's agents running). `--ray auto`
joins the cluster `ray start` made on this machine, any other value is a cluster address; leaving a
joined cluster only disconnects from it. A process that is already connected (tests, notebooks) keeps
its connection, and nothing is shut down.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType, ModuleType

from glus_cli.errors import InputError

logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'glus-cli[ray]' (make install includes it)"
GPU_WORKER_CPUS = 4
"""CPUs a GPU worker reserves at most (frame decoding, PNG writing and the prefetch thread)."""
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def import_ray() -> ModuleType:
    """The `ray` module.

    Raises:
        InputError: Ray is not installed (the message says how to install it).
    """
    try:
        import ray
    except ImportError:
        raise InputError(f"--ray needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


@contextmanager
def connected(address: str, *, verbose: bool = False) -> Iterator[ModuleType]:
    """Connect to Ray for the `with` block: start a local cluster (``local``), or join one.

    Args:
        address: ``local``, ``auto``, or a cluster address (``HOST:6379`` or ``ray://HOST:10001``).
        verbose: forward the workers' logs to this terminal.
    """
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    options = {"include_dashboard": False} if address == "local" else {}  # joined clusters keep theirs
    ray.init(
        address=address,
        log_to_driver=verbose,
        logging_level=logging.INFO if verbose else logging.WARNING,
        **options,
    )
    previous = {number: signal.getsignal(number) for number in _STOP_SIGNALS} if address == "local" else {}
    for number in previous:
        signal.signal(number, _interrupt)
    try:
        yield ray
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        ray.shutdown()  # stops a local cluster; only disconnects from a joined one


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    """Turn SIGTERM/SIGHUP into Ctrl-C, so that the local cluster is shut down on the way out."""
    raise KeyboardInterrupt(f"signal {signum}")


@dataclass(frozen=True)
class WorkerShape:
    """How many workers to start and what each reserves.

    Attributes:
        count: workers.
        num_cpus: CPUs per worker (Ray sets its ``OMP_NUM_THREADS``, so torch uses that many threads).
        num_gpus: GPUs per worker (1 or 0).
        device: the `--device` each worker loads the model on.
    """

    count: int
    num_cpus: int
    num_gpus: int
    device: str


def worker_shape(
    nodes: Sequence[Mapping[str, float]], device: str, requested: int | None, pending_videos: int
) -> WorkerShape:
    """Size the workers to the cluster: one per GPU, or one per machine on CPUs, unless `requested`.

    Args:
        nodes: each live node's resources (``CPU``, ``GPU``), as `ray.nodes()` reports them.
        device: the `--device` given: ``auto`` (GPUs if the cluster has any), ``cuda``, ``cpu``, ``mps``.
        requested: `--workers`, or None.
        pending_videos: no more workers than videos are started.

    Raises:
        InputError: the device cannot be spread over workers, or no worker fits on any node.
    """
    if device.startswith("cuda:"):
        raise InputError(
            f"--device {device} cannot be used with --ray: each worker gets its own GPU (--device cuda)"
        )
    gpus = [int(node.get("GPU", 0)) for node in nodes]
    cpus = [int(node.get("CPU", 0)) for node in nodes]
    if device == "cuda" or (device == "auto" and any(gpus)):
        if not any(gpus):
            raise InputError("--device cuda: the Ray cluster has no GPUs")
        per_gpu = min(cpu // gpu for cpu, gpu in zip(cpus, gpus, strict=True) if gpu)
        num_cpus, num_gpus, worker_device = max(1, min(GPU_WORKER_CPUS, per_gpu)), 1, "cuda"
        capacity = sum(min(gpu, cpu // num_cpus) for cpu, gpu in zip(cpus, gpus, strict=True))
        count = requested or sum(gpus)
    else:
        count = requested or max(1, len(nodes))
        num_cpus, num_gpus = max(1, min(max(cpus, default=0), sum(cpus) // count)), 0
        worker_device = "cpu" if device == "auto" else device
        capacity = sum(cpu // num_cpus for cpu in cpus)
    if capacity == 0:
        raise InputError(f"no node of the Ray cluster can hold a worker ({num_cpus} CPUs, {num_gpus} GPUs)")
    if count > capacity:
        logger.warning(
            "%d workers asked for, the cluster holds %d now; the others wait for room", count, capacity
        )
    return WorkerShape(max(1, min(count, pending_videos)), num_cpus, num_gpus, worker_device)
