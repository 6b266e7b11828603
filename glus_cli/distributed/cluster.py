"""Starting or joining the Ray cluster, with token authentication, and sizing the workers to its nodes.

`--ray local` starts a cluster on this machine for the run and always shuts it down, Ctrl-C and
SIGTERM/SIGHUP included (a driver that dies abruptly would leave Ray's agents running). `--ray auto`
joins the cluster `ray start` made on this machine, any other value is a cluster address; leaving a
joined cluster only disconnects from it. A process that is already connected (tests, notebooks) keeps
its connection, and nothing is shut down.

Authentication (README, "Securing the Ray cluster"): anyone who reaches a Ray port can run code as the
cluster's user, so

- `--ray local` always uses Ray's token authentication (``RAY_AUTH_MODE=token``; a ``disabled`` in the
  environment is overridden with a warning). Unless ``RAY_AUTH_TOKEN`` or ``RAY_AUTH_TOKEN_PATH`` names
  a token, it uses ``~/.ray/auth_token``, creating it with mode 600 (and narrowing an existing one to 600);
- joining uses token mode when ``RAY_AUTH_MODE=token``, or when ``RAY_AUTH_TOKEN``/``RAY_AUTH_TOKEN_PATH``
  is set and ``RAY_AUTH_MODE`` is not; a join made without a token (Ray's own auth mode in this process is
  not ``token``) that succeeds means the cluster accepts anyone, and one warning line says so;
- a join the cluster refuses (no token, a wrong one, a token file that cannot be read) is one
  `NetworkError` line naming ``RAY_AUTH_TOKEN``/``RAY_AUTH_TOKEN_PATH`` and the address as typed, with
  the C++ client's log lines kept off the terminal.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, ModuleType

from glus_cli.errors import InputError, NetworkError, one_line

logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'glus-cli[ray]' (make install includes it)"
GPU_WORKER_CPUS = 4
"""CPUs a GPU worker reserves at most (frame decoding, PNG writing and the prefetch thread)."""
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
AUTH_SECTION = 'README, "Securing the Ray cluster"'
"""Where the token recipe is documented, named in the warning and errors."""
OPEN_CLUSTER_WARNING = 'this Ray cluster needs no token: see README "Securing the Ray cluster"'
"""Logged on joining a cluster without a token (short: one line even on an 80-column terminal)."""
AUTH_MODE_ENV = "RAY_AUTH_MODE"
TOKEN_ENV = "RAY_AUTH_TOKEN"
TOKEN_PATH_ENV = "RAY_AUTH_TOKEN_PATH"
_TOKEN_HINT = (
    f"set {AUTH_MODE_ENV}=token and {TOKEN_ENV} (the token) or {TOKEN_PATH_ENV} (a readable file "
    f"holding it) to the cluster's token ({AUTH_SECTION})"
)


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

    Raises:
        NetworkError: the cluster cannot be reached or refuses this client (its token is missing or wrong).
    """
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    logs = {"log_to_driver": verbose, "logging_level": logging.INFO if verbose else logging.WARNING}
    if address == "local":
        use_local_token()
        _check_token_file(address)
        ray.init(address=address, include_dashboard=False, **logs)
    else:
        _join(ray, address, logs)
    previous = {number: signal.getsignal(number) for number in _STOP_SIGNALS} if address == "local" else {}
    for number in previous:
        signal.signal(number, _interrupt)
    try:
        yield ray
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        ray.shutdown()  # stops a local cluster; only disconnects from a joined one


def use_local_token() -> Path | None:
    """Set this process up so that the local cluster it starts requires a token (see the module doc).

    Returns:
        The token file made or narrowed to mode 600 (None: the token comes from ``RAY_AUTH_TOKEN`` or
        ``RAY_AUTH_TOKEN_PATH``, which are the user's to protect).
    """
    mode = os.environ.get(AUTH_MODE_ENV)
    if mode is not None and mode.lower() != "token":
        logger.warning("%s=%s ignored: --ray local always uses token authentication", AUTH_MODE_ENV, mode)
    os.environ[AUTH_MODE_ENV] = "token"
    _refresh_ray_config()
    if os.environ.get(TOKEN_ENV) or os.environ.get(TOKEN_PATH_ENV):
        return None
    path = Path.home() / ".ray" / "auth_token"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:  # created readable by its owner only; Ray reads it, and would create it world-readable
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if stat.S_IMODE(path.stat().st_mode) & 0o077:
            logger.info("narrowing %s to mode 600 (the token lets its holder run code on the cluster)", path)
            path.chmod(0o600)
        return path
    with os.fdopen(descriptor, "w") as file:
        file.write(secrets.token_hex(32))  # Ray's own format: 256 random bits as hex
    return path


def _refresh_ray_config() -> None:
    """Make an already imported Ray read ``RAY_AUTH_MODE`` again (it caches its config)."""
    from ray._raylet import Config

    Config.initialize("")


def _join(ray: ModuleType, address: str, logs: dict[str, object]) -> None:
    """`ray.init` on an existing cluster, with the auth rules of the module doc.

    Raises:
        NetworkError: the cluster cannot be reached or refuses this client.
    """
    mode = os.environ.get(AUTH_MODE_ENV)
    if mode is None and (os.environ.get(TOKEN_ENV) or os.environ.get(TOKEN_PATH_ENV)):
        os.environ[AUTH_MODE_ENV] = "token"
        _refresh_ray_config()
    if _token_mode():
        _check_token_file(address)
    with _captured_stderr() as captured:
        try:
            ray.init(address=address, **logs)
        except Exception as error:
            refused = "Unauthenticated" in captured() or isinstance(error, ray.exceptions.AuthenticationError)
            logger.debug("ray.init(%r) failed: %s; Ray's log: %s", address, one_line(error), captured())
            if not refused and not isinstance(error, ConnectionError):
                raise
            reason = "it refused this client's token" if refused else "no cluster answered, or it refused us"
            raise NetworkError(f"cannot join the Ray cluster at {address}: {reason}; {_TOKEN_HINT}") from None
    if not _token_mode():
        logger.warning(OPEN_CLUSTER_WARNING)


def _check_token_file(address: str) -> None:
    """Refuse a ``RAY_AUTH_TOKEN_PATH`` that cannot be read (when ``RAY_AUTH_TOKEN`` does not override it).

    Raises:
        NetworkError: it cannot be read (Ray would fail with a traceback).
    """
    token_path = os.environ.get(TOKEN_PATH_ENV)
    if token_path and not os.environ.get(TOKEN_ENV) and not os.access(token_path, os.R_OK):
        what = "start a local Ray cluster" if address == "local" else f"join the Ray cluster at {address}"
        raise NetworkError(f"cannot {what}: {TOKEN_PATH_ENV}={token_path} cannot be read; {_TOKEN_HINT}")


def _token_mode() -> bool:
    """Whether Ray in this process sends a token (its auth mode is ``token``)."""
    from ray._raylet import AuthenticationMode, get_authentication_mode

    return bool(get_authentication_mode() == AuthenticationMode.TOKEN)


@contextmanager
def _captured_stderr() -> Iterator[Callable[[], str]]:
    """Send file descriptor 2 (where Ray's C++ client logs) to a temporary file for the `with` block.

    Yields a function returning what was captured so far. What was captured is written back to the real
    stderr when the block ends without an error (Ray's warnings of a successful join stay visible).
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)

        def captured() -> str:
            sys.stderr.flush()
            sink.seek(0)
            return sink.read().decode(errors="replace")

        try:
            yield captured
            text = captured()
            if text:
                os.write(saved, text.encode())
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


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
