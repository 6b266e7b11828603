"""The output folder as the meeting point of a Ray batch: one driver per (OUT, shard), one OUT for all.

- The driver lock ``OUT/.glus-batch.<i>-of-<n>.lock`` is an advisory ``flock`` taken for the whole run:
  a second driver on the same OUT and shard is refused, drivers on other shards of the same OUT are not
  (their videos are disjoint). The kernel releases the lock when its process dies, however it dies, so a
  crashed driver never blocks the rerun that resumes it.
- The sentinel ``OUT/.glus-ray-sentinel.<token>`` holds a random token the driver writes and hands to
  every worker; a worker that does not find it is looking at another folder (OUT is not on a
  filesystem shared by every node, or is mounted elsewhere), and the run stops before anything is written.
"""

from __future__ import annotations

import fcntl
import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from glus_cli.errors import OutputError
from glus_cli.files import atomic_write_bytes

SENTINEL_PREFIX = ".glus-ray-sentinel."


def lock_path(out: Path, shard_index: int, shard_count: int) -> Path:
    """The driver lock of one shard of `out`."""
    return out / f".glus-batch.{shard_index}-of-{shard_count}.lock"


@contextmanager
def driver_lock(out: Path, shard_index: int = 0, shard_count: int = 1) -> Iterator[Path]:
    """Hold the (OUT, shard) driver lock for the `with` block.

    Raises:
        OutputError: another driver holds it.
    """
    path = lock_path(out, shard_index, shard_count)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = path.read_text(encoding="utf-8", errors="replace").strip() or "another process"
            raise OutputError(
                f"another glus batch driver ({holder}) is running on {out} shard "
                f"{shard_index}/{shard_count}; wait for it or stop it"
            ) from None
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
        yield path
    finally:
        os.close(descriptor)  # releases the lock


def write_sentinel(out: Path) -> str:
    """Write a fresh sentinel into `out` and return its token.

    Each run has its own file (``.glus-ray-sentinel.<token>``), so that drivers on other shards of the
    same OUT do not overwrite each other's.
    """
    token = uuid.uuid4().hex
    atomic_write_bytes(out / f"{SENTINEL_PREFIX}{token}", token.encode())
    return token


def remove_sentinel(out: Path, token: str) -> None:
    """Remove a run's sentinel (a crashed run leaves a small hidden file, which nothing reads again)."""
    (out / f"{SENTINEL_PREFIX}{token}").unlink(missing_ok=True)


def check_sentinel(out: Path, token: str) -> None:
    """Check, on a worker, that `out` is the driver's output folder.

    Raises:
        OutputError: the sentinel is missing or holds another token.
    """
    path = out / f"{SENTINEL_PREFIX}{token}"
    try:
        found = path.read_text(encoding="utf-8").strip()
    except OSError:
        found = None
    if found != token:
        raise OutputError(
            f"the Ray worker on {socket.gethostname()} does not see the driver's output folder {out} "
            f"(no {path.name}); the output folder must be the same path on a filesystem shared by every node"
        )
