"""`glus batch --ray` on a real local Ray cluster: the same files as local `glus batch`, worker deaths,
resume and shards (marked `ray`; skipped where Ray is not installed).

One module-scoped cluster (2 CPUs, no GPU) serves every test; each test is one driver call, which starts
its own workers (each loads the tiny checkpoint once). The reference is a local `glus batch` over the same
four synthetic videos (one longer than the others, one a video file), with the workers' thread count.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from cli_helpers import processes_naming, run_glus
from glus_dataset import copy_tree, tree_bytes

from glus_cli.cli.app import main
from glus_cli.cli.runs import EXIT_VIDEOS_FAILED
from glus_cli.distributed.cluster import OPEN_CLUSTER_WARNING
from glus_cli.distributed.worker import FAULT_ENV
from glus_cli.errors import CheckpointError
from glus_cli.resume import RECORD_NAME
from glus_cli.testing.checkpoint import SyntheticCheckpoint
from glus_cli.testing.videos import write_frame_folder, write_synthetic_video

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.ray
pytest_plugins = ["tests.fixtures"]

REPO = Path(__file__).resolve().parents[1]
"""The checkout under test, put on the subprocess driver's path (its workers inherit the path)."""
SIZE = (48, 64)
FRAMES = {"vidA": 2, "vidB": 1, "vidLong": 4}
"""Frame folders; ``clip.mp4`` (2 frames) is the video file."""
WORKER_THREADS = 1
"""Torch threads of each worker (Ray sets ``OMP_NUM_THREADS`` to a worker's CPUs, 1 here). The local
reference runs with as many: on CPUs, float sums depend on how the work is split between threads, so
predicted IoUs agree to the last bit only at equal thread counts (the masks agree either way)."""
EXPRESSIONS = {
    "vidA": ["the red circle", "the green square"],
    "vidB": ["the red circle"],
    "vidLong": ["the green square"],
    "clip": ["the red circle"],
}


@dataclass(frozen=True)
class RayDataset:
    """The videos, the expressions file, the checkpoint and the local reference output."""

    videos: Path
    expressions: Path
    checkpoint: Path
    reference: Path

    def args(self, out: Path, *extra: str) -> list[str]:
        """`glus batch` arguments over the dataset on the CPU, quiet."""
        return [
            "batch",
            str(self.videos),
            "-e",
            str(self.expressions),
            "-o",
            str(out),
            "--model",
            str(self.checkpoint),
            "--device",
            "cpu",
            "--quiet",
            *extra,
        ]


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    """A local Ray cluster for the module (the driver reuses the connection and leaves it running)."""
    previous = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"  # no ~/.ray/auth_token
    try:
        ray.init(num_cpus=2, num_gpus=0, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
        yield
    finally:
        ray.shutdown()
        if previous is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        else:
            os.environ["RAY_AUTH_MODE"] = previous


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: SyntheticCheckpoint) -> RayDataset:
    """The dataset, and a local `glus batch` over it (in-process, like the Ray runs' driver)."""
    root = tmp_path_factory.mktemp("ray-dataset")
    for name, frames in FRAMES.items():
        write_frame_folder(root / "videos" / name, frames, size=SIZE)
    write_synthetic_video(root / "videos" / "clip.mp4", 2, size=SIZE)
    (root / "expressions.json").write_text(json.dumps(EXPRESSIONS))
    dataset = RayDataset(root / "videos", root / "expressions.json", tiny_checkpoint.path, root / "reference")
    threads = torch.get_num_threads()
    torch.set_num_threads(WORKER_THREADS)
    try:
        with pytest.MonkeyPatch.context() as patch, pytest.raises(SystemExit) as exited:
            patch.setattr(sys, "argv", ["glus", *dataset.args(dataset.reference)])
            main()
    finally:
        torch.set_num_threads(threads)
    assert exited.value.code == 0
    return dataset


def records(root: Path) -> dict[str, dict]:
    """Every `expression.json` under `root`, without what differs between runs (time, output folder)."""
    found = {}
    for path in sorted(root.rglob(RECORD_NAME)):
        record = json.loads(path.read_text())
        del record["seconds"], record["output_dir"]
        found[str(path.relative_to(root))] = record
    return found


def assert_same_outputs(out: Path, reference: Path, videos: set[str] | None = None) -> None:
    """Byte-identical masks and equal records, over every video or over `videos`."""

    def keep(files: dict) -> dict:
        return {k: v for k, v in files.items() if videos is None or k.split("/")[0] in videos}

    masks = keep(tree_bytes(reference))
    assert masks, "the reference has masks"
    assert keep(tree_bytes(out)) == masks
    assert keep(records(out)) == keep(records(reference))


def summary(out: Path, name: str = "summary.json") -> dict:
    return json.loads((out / name).read_text())


def test_two_workers_write_the_files_of_local_batch(
    cluster: None, data: RayDataset, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code, output = run_glus(data.args(out, "--ray", "local", "--workers", "2"), capsys)
    assert code == 0, output
    assert_same_outputs(out, data.reference)
    ray_summary, local_summary = summary(out), summary(data.reference)
    for key in ("videos", "expressions", "expressions_done", "skipped", "failures", "model", "options"):
        assert ray_summary[key] == local_summary[key], key
    block = ray_summary["ray"]
    assert block["attempts"] == dict.fromkeys(sorted(EXPRESSIONS), 1)
    assert [worker["device"] for worker in block["workers"]] == ["cpu", "cpu"]
    assert sum(worker["videos"] for worker in block["workers"]) == len(EXPRESSIONS)
    assert block["resources_per_worker"] == {"CPU": 1, "GPU": 0}
    assert not list(out.glob(".glus-ray-sentinel.*"))


def test_dead_workers_are_retried_then_their_video_fails(
    cluster: None,
    data: RayDataset,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # vidLong's worker is killed once, mid-video; vidB kills its worker on every attempt.
    monkeypatch.setenv(FAULT_ENV, "vidLong:3,vidB:1:always")
    out = tmp_path / "out"
    code, output = run_glus(data.args(out, "--ray", "local", "--workers", "2"), capsys)
    assert code == EXIT_VIDEOS_FAILED, output
    assert "failed: vidB: its Ray worker died 3 times" in output
    assert (out / ".glus-test-died.vidLong").exists()  # it did die
    assert_same_outputs(out, data.reference, videos={"vidA", "vidLong", "clip"})
    assert not (out / "vidB" / "0" / RECORD_NAME).exists()
    block = summary(out)["ray"]
    assert block["attempts"] == {"clip": 1, "vidA": 1, "vidB": 3, "vidLong": 2}
    assert sum(worker["restarts"] for worker in block["workers"]) == 4
    assert [failure["video"] for failure in summary(out)["failures"]] == ["vidB"]


def test_half_written_output_resumes(
    cluster: None, data: RayDataset, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = copy_tree(data.reference, tmp_path / "out")
    (out / "vidA" / "1" / RECORD_NAME).unlink()  # interrupted in the middle of vidA's second expression
    (out / "vidA" / "1" / "00001.png").unlink()
    shutil.rmtree(out / "vidLong")  # never started
    untouched = (out / "vidA" / "0" / "00000.png").stat().st_mtime_ns
    code, output = run_glus(data.args(out, "--ray", "local", "--workers", "2"), capsys)
    assert code == 0, output
    assert_same_outputs(out, data.reference)
    assert (out / "vidA" / "0" / "00000.png").stat().st_mtime_ns == untouched
    resumed = summary(out)
    assert sorted(resumed["ray"]["attempts"]) == ["vidA", "vidLong"]
    assert resumed["skipped"] == ["clip/0", "vidA/0", "vidB/0"]  # in task (name) order, as locally
    assert [outcome["exp_id"] for outcome in resumed["outcomes"]] == ["1", "0"]


def test_shard_with_ray_does_only_its_shard(
    cluster: None, data: RayDataset, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code, output = run_glus(data.args(out, "--ray", "local", "--workers", "2", "--shard", "1/2"), capsys)
    assert code == 0, output
    shard = {"vidA", "vidLong"}  # name order: clip, vidA, vidB, vidLong; shard 1/2 takes the 2nd and 4th
    assert {path.name for path in out.iterdir() if path.is_dir()} == shard
    assert_same_outputs(out, data.reference, videos=shard)
    assert summary(out, "summary.shard-1-of-2.json")["shard"] == "1/2"


def test_a_worker_that_cannot_load_the_model_stops_the_run_with_its_error(
    cluster: None, data: RayDataset, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The driver's checks pass (configs and tokenizer are there), the worker's load fails (no weights)."""
    broken = shutil.copytree(data.checkpoint, tmp_path / "no-weights")
    for shard in broken.glob("pytorch_model*"):
        shard.unlink()
    args = data.args(tmp_path / "out", "--ray", "local", "--workers", "1")
    args[args.index("--model") + 1] = str(broken)
    code, output = run_glus(args, capsys)
    assert code == CheckpointError.exit_code, output
    assert output.strip().startswith("error: ") and len(output.strip().splitlines()) == 1


def test_joining_an_open_cluster_warns_in_one_line(cluster: None) -> None:
    # The module's cluster runs without authentication; a client without a token joins it by address.
    env = {key: value for key, value in os.environ.items() if not key.startswith("RAY_AUTH")}
    script = "from glus_cli.distributed.cluster import connected\nwith connected(%r):\n    pass"
    address = ray.get_runtime_context().gcs_address
    env |= {"PYTHONPATH": str(REPO), "HOME": tempfile.mkdtemp(prefix="glr")}
    done = subprocess.run(
        [sys.executable, "-c", script % address], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert [line for line in done.stderr.splitlines() if OPEN_CLUSTER_WARNING in line] == [
        OPEN_CLUSTER_WARNING
    ], done.stderr
    shutil.rmtree(env["HOME"], ignore_errors=True)


def test_ctrl_c_shuts_a_local_cluster_down(data: RayDataset, tmp_path: Path) -> None:
    ray_tmp = Path(tempfile.mkdtemp(prefix="glr", dir="/tmp"))  # short: Ray's socket paths must fit
    # RAY_AUTH_MODE=disabled is overridden: --ray local always uses a token, made in HOME with mode 600.
    env = {**os.environ, "RAY_TMPDIR": str(ray_tmp), "RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(REPO)}
    env = {key: value for key, value in env.items() if key not in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")}
    env["HOME"] = str(ray_tmp)
    command = [sys.executable, "-c", "from glus_cli.cli.app import main; main()"]
    driver = subprocess.Popen(
        [*command, "-v", *data.args(tmp_path / "out", "--ray", "local", "--workers", "1")],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert driver.stderr is not None
        seen = []
        for line in driver.stderr:  # wait until the cluster runs and the worker is being created
            seen.append(line)
            if "Ray: 1 workers" in line:
                break
        assert any("RAY_AUTH_MODE=disabled ignored" in line for line in seen), seen
        assert processes_naming(ray_tmp), "the local cluster is running"
        assert stat.S_IMODE((ray_tmp / ".ray" / "auth_token").stat().st_mode) == 0o600
        driver.send_signal(signal.SIGTERM)
        assert driver.wait(timeout=60) == 130
    finally:
        if driver.poll() is None:
            driver.kill()
    deadline = time.monotonic() + 20
    while processes_naming(ray_tmp) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert processes_naming(ray_tmp) == []
    shutil.rmtree(ray_tmp, ignore_errors=True)
