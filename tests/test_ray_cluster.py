"""`glus batch --ray ADDRESS` on a two-node cluster with token authentication, all on this machine.

Two `ray start` processes (a head and a worker node, one CPU each, their own temp folders) form the
cluster; the token lives in a mode-600 file named by ``RAY_AUTH_TOKEN_PATH`` and ``HOME`` points into
the test folder, so nothing touches the user's ``~/.ray``. Every driver is a separate `glus` process,
as a user would run it. Marked `ray`; about a minute here.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cli_helpers import processes_naming
from glus_dataset import tree_bytes

from glus_cli.distributed.cluster import OPEN_CLUSTER_WARNING
from glus_cli.errors import NetworkError
from glus_cli.runner import RECORD_NAME
from glus_cli.testing.checkpoint import SyntheticCheckpoint
from glus_cli.testing.videos import write_frame_folder

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.ray
pytest_plugins = ["tests.fixtures"]

REPO = Path(__file__).resolve().parents[1]
SIZE = (48, 64)
FRAMES = {"long1": 24, "long2": 24, "short1": 3, "short2": 2}
"""Two long videos keep both workers busy when the worker node is killed."""
EXPRESSIONS = {
    "long1": ["the red circle"],
    "long2": ["the green square"],
    "short1": ["the red circle", "the green square"],
    "short2": ["the green square"],
}
FAST_HEALTH_CHECKS = {
    "RAY_health_check_period_ms": "500",
    "RAY_health_check_timeout_ms": "500",
    "RAY_health_check_failure_threshold": "3",
}
"""The head notices a dead node within about 2 s instead of Ray's default tens of seconds."""
AUTH_VARIABLES = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS")


@dataclass
class TwoNodes:
    """The running cluster and how to reach it."""

    root: Path
    address: str
    env: dict[str, str]
    """A client environment holding the token."""

    def node_pids(self, name: str) -> list[int]:
        """The node's processes: those naming its temp folder (raylet, agents) and their children (its
        Ray workers, whose command line Ray rewrites to ``ray::...``)."""
        found = set(processes_naming(self.root / name))
        while True:
            children = {pid for pid, parent in _parents().items() if parent in found} - found
            if not children:
                return sorted(found)
            found |= children


@dataclass(frozen=True)
class Data:
    videos: Path
    expressions: Path
    checkpoint: Path
    reference: Path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _parents() -> dict[int, int]:
    """Parent pid of every process."""
    parents = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
        except OSError:  # the process is gone
            continue
        parents[int(proc.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return parents


def _stop(pids: list[int]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        time.sleep(1.0)


def _ray_start(env: dict[str, str], *args: str) -> None:
    ray_cli = Path(sys.executable).with_name("ray")
    subprocess.run(
        [str(ray_cli), "start", "--num-cpus=1", "--num-gpus=0", "--disable-usage-stats", *args],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def two_nodes() -> Iterator[TwoNodes]:
    root = Path(tempfile.mkdtemp(prefix="glr2", dir="/tmp"))  # short: Ray's socket paths must fit
    token = root / "token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    env = {key: value for key, value in os.environ.items() if key not in AUTH_VARIABLES}
    env |= {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token), "HOME": str(root)}
    env["PYTHONPATH"] = str(REPO)
    port = _free_port()
    address = f"127.0.0.1:{port}"
    try:
        _ray_start(
            env | FAST_HEALTH_CHECKS,
            "--head",
            "--node-ip-address=127.0.0.1",
            f"--port={port}",
            f"--temp-dir={root / 'head'}",
            "--include-dashboard=false",
        )
        _ray_start(env, f"--address={address}", f"--temp-dir={root / 'worker'}")
        yield TwoNodes(root, address, env)
    finally:
        _stop(processes_naming(root))
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: SyntheticCheckpoint) -> Data:
    """The dataset and a local `glus batch` over it with one thread (a worker's thread count)."""
    root = tmp_path_factory.mktemp("two-nodes")
    for name, frames in FRAMES.items():
        write_frame_folder(root / "videos" / name, frames, size=SIZE)
    (root / "expressions.json").write_text(json.dumps(EXPRESSIONS))
    data = Data(root / "videos", root / "expressions.json", tiny_checkpoint.path, root / "reference")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    done = glus(batch_args(data, data.reference), env)
    assert done.returncode == 0, done.stderr
    return data


def batch_args(data: Data, out: Path, *extra: str) -> list[str]:
    return [
        "batch",
        str(data.videos),
        "-e",
        str(data.expressions),
        "-o",
        str(out),
        "--model",
        str(data.checkpoint),
        "--device",
        "cpu",
        "--quiet",
        *extra,
    ]


def glus(args: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """`glus ARGS` in its own process."""
    command = [sys.executable, "-c", "from glus_cli.cli.app import main; main()", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)


def same_masks(out: Path, reference: Path) -> None:
    expected = tree_bytes(reference)
    assert expected and tree_bytes(out) == expected
    assert len(list(out.rglob(RECORD_NAME))) == sum(len(texts) for texts in EXPRESSIONS.values())


def test_one_worker_per_node_spreads_the_videos_and_matches_local(
    two_nodes: TwoNodes, data: Data, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    done = glus(batch_args(data, out, "--ray", two_nodes.address, "--workers", "2"), two_nodes.env)
    assert done.returncode == 0, done.stderr
    assert OPEN_CLUSTER_WARNING not in done.stderr  # joined with the token
    same_masks(out, data.reference)
    workers = json.loads((out / "summary.json").read_text())["ray"]["workers"]
    assert len({worker["node"] for worker in workers}) == 2
    assert all(worker["videos"] >= 1 for worker in workers)


def test_a_client_without_the_token_is_refused_in_one_line(
    two_nodes: TwoNodes, data: Data, tmp_path: Path
) -> None:
    env = {key: value for key, value in two_nodes.env.items() if key not in AUTH_VARIABLES}
    for case in ({}, {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "0" * 64}):
        done = glus(batch_args(data, tmp_path / "out", "--ray", two_nodes.address), env | case)
        assert done.returncode == NetworkError.exit_code, done.stderr
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
        assert "RAY_AUTH_TOKEN" in lines[0] and f"at {two_nodes.address}:" in lines[0]
        assert not list((tmp_path / "out").rglob("*.png"))


def test_killing_the_worker_node_loses_nothing(two_nodes: TwoNodes, data: Data, tmp_path: Path) -> None:
    out = tmp_path / "out"
    command = [sys.executable, "-c", "from glus_cli.cli.app import main; main()"]
    args = batch_args(data, out, "--ray", two_nodes.address, "--workers", "2")
    driver = subprocess.Popen([*command, *args], env=two_nodes.env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and driver.poll() is None:  # both long videos under way
            if all(any((out / name).rglob("*.png")) for name in ("long1", "long2")):
                break
            time.sleep(0.05)
        assert driver.poll() is None, "the run ended before the worker node could be killed"
        victims = two_nodes.node_pids("worker")
        assert victims, "the worker node runs"
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        _, stderr = driver.communicate(timeout=300)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 0, stderr
    same_masks(out, data.reference)
    block = json.loads((out / "summary.json").read_text())["ray"]
    assert sum(worker["restarts"] for worker in block["workers"]) == 1
    assert sorted(block["attempts"].values()) == [1, 1, 1, 2]  # the killed node's video, redone
    survivor = next(worker for worker in block["workers"] if worker["restarts"] == 0)
    assert survivor["videos"] >= 3  # the head node's worker did the rest


@pytest.mark.parametrize("address", ["local", "127.0.0.1:9"])
def test_an_unreadable_token_file_is_one_line(data: Data, tmp_path: Path, address: str) -> None:
    env = {key: value for key, value in os.environ.items() if key not in AUTH_VARIABLES}
    missing = tmp_path / "no-such-token"
    env |= {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(missing), "PYTHONPATH": str(REPO)}
    env["HOME"] = str(tmp_path)  # nothing may be written to the user's ~/.ray
    done = glus(batch_args(data, tmp_path / "out", "--ray", address), env, timeout=120)
    assert done.returncode == NetworkError.exit_code, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert f"RAY_AUTH_TOKEN_PATH={missing} cannot be read" in lines[0]
    assert not (tmp_path / ".ray").exists()
