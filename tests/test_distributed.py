"""The Ray-free parts of `glus batch --ray`: dispatch bookkeeping, worker sizing, the order videos are
sent in, the driver lock, the sentinel, the fault hook's syntax, merging reports, and the CLI without Ray."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from cli_helpers import run_glus

from glus_cli.batch import BatchReport, Expression, VideoFailure, VideoTask
from glus_cli.distributed.cluster import INSTALL_HINT, WorkerShape, worker_shape
from glus_cli.distributed.dispatch import Dispatch
from glus_cli.distributed.driver import merge_reports
from glus_cli.distributed.plan import longest_first
from glus_cli.distributed.shared_output import check_sentinel, driver_lock, remove_sentinel, write_sentinel
from glus_cli.distributed.worker import FaultPlan, GlusWorker, ProgressBoard, WorkerSpec
from glus_cli.errors import InputError, OutputError, ResourceError
from glus_cli.model_spec import ModelSpec
from glus_cli.protocol import SegmentationOptions
from glus_cli.resume import RECORD_NAME
from glus_cli.runner import ExpressionOutcome
from glus_cli.testing.videos import write_frame_folder, write_synthetic_video
from glus_cli.video import estimate_num_frames

pytest_plugins = ["tests.cli_fixtures"]


def test_videos_go_to_idle_workers_in_queue_order_counting_attempts() -> None:
    dispatch = Dispatch.start(["long", "mid", "short"], num_workers=2)
    assert dispatch.assign() == []  # nobody has answered a ping yet
    dispatch.ready(1)
    dispatch.ready(0)
    assert dispatch.assign() == [(1, "long"), (0, "mid")]
    assert dispatch.done(0) == "mid"
    assert dispatch.assign() == [(0, "short")]
    assert dispatch.attempts == {"long": 1, "mid": 1, "short": 1}
    dispatch.done(0), dispatch.done(1)
    assert dispatch.finished


def test_a_dead_workers_video_goes_first_and_waits_for_a_worker_that_answered() -> None:
    dispatch = Dispatch.start(["a", "b", "c"], num_workers=2)
    dispatch.ready(0), dispatch.ready(1)
    dispatch.assign()
    assert dispatch.died(0, "ActorDiedError", now=10.0) == "a"
    assert list(dispatch.queue) == ["a", "c"]
    dispatch.unreachable(0, now=11.0)  # a ping while Ray restarts it
    assert dispatch.recovering == {0: 10.0}
    assert dispatch.assign() == []  # worker 0 has not answered since it died
    dispatch.ready(0)
    assert dispatch.assign() == [(0, "a")]
    assert dispatch.attempts["a"] == 2


def test_attempts_are_capped() -> None:
    dispatch = Dispatch.start(["poison", "ok"], num_workers=1, max_attempts=2)
    for _ in range(2):
        dispatch.ready(0)
        assert dispatch.assign() == [(0, "poison")]
        dispatch.died(0, "ActorDiedError", now=0.0)
    assert dispatch.gave_up == {"poison": "ActorDiedError"}
    dispatch.ready(0)
    assert dispatch.assign() == [(0, "ok")]


def test_no_worker_left_stops_the_run() -> None:
    dispatch = Dispatch.start(["a", "b"], num_workers=2)
    dispatch.ready(0), dispatch.ready(1)
    dispatch.assign()
    dispatch.died(0, "NodeDiedError", now=0.0)
    assert dispatch.drop_stale(now=100.0, timeout=60.0) == [0]
    dispatch.died(1, "NodeDiedError", now=100.0)
    with pytest.raises(ResourceError, match="no Ray worker is left"):
        dispatch.drop_stale(now=200.0, timeout=60.0)


def test_a_recovering_worker_is_kept_within_the_timeout() -> None:
    dispatch = Dispatch.start(["a"], num_workers=1)
    dispatch.ready(0)
    dispatch.assign()
    dispatch.died(0, "ActorDiedError", now=0.0)
    assert dispatch.drop_stale(now=30.0, timeout=60.0) == []


@pytest.mark.parametrize(
    ("nodes", "device", "requested", "shape"),
    [
        ([{"CPU": 2}], "cpu", 2, WorkerShape(2, 1, 0, "cpu")),
        ([{"CPU": 16}, {"CPU": 16}], "auto", None, WorkerShape(2, 16, 0, "cpu")),  # one per machine
        ([{"CPU": 64, "GPU": 8}, {"CPU": 16, "GPU": 8}], "auto", None, WorkerShape(16, 2, 1, "cuda")),
        ([{"CPU": 32, "GPU": 4}], "cuda", 2, WorkerShape(2, 4, 1, "cuda")),
        ([{"CPU": 32, "GPU": 4}], "cpu", 1, WorkerShape(1, 32, 0, "cpu")),
    ],
)
def test_worker_shape(
    nodes: list[dict[str, float]], device: str, requested: int | None, shape: WorkerShape
) -> None:
    assert worker_shape(nodes, device, requested, pending_videos=100) == shape


def test_no_more_workers_than_videos() -> None:
    assert worker_shape([{"CPU": 8, "GPU": 8}], "auto", None, pending_videos=3).count == 3


@pytest.mark.parametrize(
    ("nodes", "device", "message"),
    [
        ([{"CPU": 8, "GPU": 2}], "cuda:1", "each worker gets its own GPU"),
        ([{"CPU": 8}], "cuda", "has no GPUs"),
        ([{"CPU": 0}], "cpu", "can hold a worker"),
    ],
)
def test_worker_shape_rejects(nodes: list[dict[str, float]], device: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        worker_shape(nodes, device, None, pending_videos=1)


def test_frame_estimates(tmp_path: Path) -> None:
    write_frame_folder(tmp_path / "frames", 5, size=(16, 16))
    (tmp_path / "frames" / "notes.txt").write_text("")
    write_synthetic_video(tmp_path / "clip.mp4", 7, size=(16, 16))
    assert estimate_num_frames(tmp_path / "frames") == 5
    assert estimate_num_frames(tmp_path / "frames", stride=2) == 3
    assert estimate_num_frames(tmp_path / "clip.mp4") == 7
    assert estimate_num_frames(tmp_path / "clip.mp4", stride=2, max_frames=3) == 3


def test_longest_first_sends_costly_pending_videos_first(tmp_path: Path) -> None:
    for name, frames in (("a", 2), ("b", 6), ("c", 3), ("done", 9)):
        write_frame_folder(tmp_path / "in" / name, frames, size=(16, 16))
    tasks = [
        VideoTask(
            "a", tmp_path / "in" / "a", (Expression("0", "x"), Expression("1", "y"), Expression("2", "z"))
        ),
        VideoTask("b", tmp_path / "in" / "b", (Expression("0", "x"),)),
        VideoTask("c", tmp_path / "in" / "c", (Expression("0", "x"), Expression("1", "y"))),
        VideoTask("done", tmp_path / "in" / "done", (Expression("0", "x"),)),
        VideoTask("missing", None, (Expression("0", "x"),)),
    ]
    out = tmp_path / "out"
    for finished in ("done/0", "a/2"):
        (out / finished).mkdir(parents=True)
        (out / finished / RECORD_NAME).write_text("{}")
    plan = longest_first(tasks, out)
    # b: 6 frames x 1, c: 3 x 2, a: 2 x 2 (one of its three is complete), missing: 0; done: nothing left
    assert [(video.task.name, video.steps) for video in plan] == [
        ("b", 6),
        ("c", 6),
        ("a", 4),
        ("missing", 0),
    ]


def test_merged_report_reads_as_a_local_run() -> None:
    tasks = [
        VideoTask(name, None, (Expression("0", "x"), Expression("1", "y")))
        for name in ("v1", "v2", "v3", "v4")
    ]
    outcome = ExpressionOutcome("1", "y", "out/v2/1", None, 3)
    reports = {
        "v2": BatchReport(1, 2, skipped=["v2/0"], outcomes=[outcome]),
        "v3": BatchReport(1, 2, failures=[VideoFailure("v3", "bad frame")]),
    }
    merged = merge_reports(tasks, reports, {"v4": "its Ray worker died 3 times"})
    assert (merged.videos, merged.expressions) == (4, 8)
    assert merged.skipped == ["v1/0", "v1/1", "v2/0"]
    assert merged.outcomes == [outcome]
    assert merged.failures == [
        VideoFailure("v3", "bad frame"),
        VideoFailure("v4", "its Ray worker died 3 times"),
    ]


def test_a_second_driver_on_the_same_shard_is_refused(tmp_path: Path) -> None:
    refused = pytest.raises(OutputError, match=r"another glus batch driver \(pid \d+ on .*\) is running")
    with driver_lock(tmp_path, 0, 2):
        with refused, driver_lock(tmp_path, 0, 2):
            pass
        with driver_lock(tmp_path, 1, 2):  # another shard of the same OUT
            pass
    with driver_lock(tmp_path, 0, 2):  # released
        pass


def test_sentinel_proves_the_worker_sees_the_drivers_folder(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    token = write_sentinel(tmp_path / "out")
    check_sentinel(tmp_path / "out", token)
    (tmp_path / "elsewhere").mkdir()
    with pytest.raises(OutputError, match="must be the same path on a filesystem shared by every node"):
        check_sentinel(tmp_path / "elsewhere", token)
    other = write_sentinel(tmp_path / "out")  # a driver on another shard of the same OUT
    check_sentinel(tmp_path / "out", token)
    remove_sentinel(tmp_path / "out", token)
    with pytest.raises(OutputError):
        check_sentinel(tmp_path / "out", token)
    check_sentinel(tmp_path / "out", other)


def test_a_worker_that_does_not_see_out_reports_it_when_pinged(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    token = write_sentinel(tmp_path / "out")
    spec = WorkerSpec(
        ModelSpec("unused"), SegmentationOptions(), ("png",), 1, None, None, tmp_path / "elsewhere"
    )
    worker = GlusWorker(spec, token)  # the sentinel is checked before the model would load
    with pytest.raises(OutputError, match="does not see the driver's output folder"):
        worker.info()


def test_fault_plan_syntax() -> None:
    assert FaultPlan.parse(None).deaths == {}
    assert FaultPlan.parse("v1:3,v2:1:always").deaths == {"v1": (3, False), "v2": (1, True)}
    for bad in ("v1", "v1:0", "v1:x", "v1:2:often", ":2"):
        with pytest.raises(InputError):
            FaultPlan.parse(bad)


def test_fault_plan_leaves_other_steps_alone(tmp_path: Path) -> None:
    plan = FaultPlan.parse("v1:3")
    plan.after_step(tmp_path, "v1", 2)
    plan.after_step(tmp_path, "v2", 3)
    (tmp_path / ".glus-test-died.v1").touch()  # died here once already
    plan.after_step(tmp_path, "v1", 3)  # still alive: the death is once per OUT


def test_progress_board_restarts_a_retried_video() -> None:
    board = ProgressBoard()
    board.start("v", 10)
    board.advance("v", 4)
    assert board.snapshot() == {"v": (4, 10)}
    board.start("v", 10)  # a second attempt
    board.advance("v", 1)
    assert board.snapshot() == {"v": (1, 10)}


def _dataset(tmp_path: Path) -> list[str]:
    write_frame_folder(tmp_path / "videos" / "v", 2, size=(16, 16))
    (tmp_path / "e.json").write_text(json.dumps({"v": ["the cat"]}))
    return ["batch", str(tmp_path / "videos"), "-e", str(tmp_path / "e.json"), "-o", str(tmp_path / "out")]


def test_ray_missing_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    code, output = run_glus([*_dataset(tmp_path), "--ray", "local"], capsys)
    assert code == InputError.exit_code
    assert output.strip() == f"error: --ray needs Ray, which is not installed: {INSTALL_HINT}"
    assert not list((tmp_path / "out").glob(".glus-ray-sentinel.*"))


def test_cli_refuses_a_second_driver(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], cli_checkpoint: Path
) -> None:
    args = [*_dataset(tmp_path), "--ray", "local", "--model", str(cli_checkpoint)]
    (tmp_path / "out").mkdir()
    with driver_lock(tmp_path / "out"):
        code, output = run_glus(args, capsys)
    assert code == OutputError.exit_code
    assert output.startswith("error: another glus batch driver")


def test_workers_need_ray(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, output = run_glus([*_dataset(tmp_path), "--workers", "2"], capsys)
    assert (code, output.strip()) == (InputError.exit_code, "error: --workers needs --ray")


def test_a_finished_output_needs_no_cluster(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("ray")
    args = [*_dataset(tmp_path), "--ray", "local", "--quiet"]
    (tmp_path / "out" / "v" / "0").mkdir(parents=True)
    (tmp_path / "out" / "v" / "0" / RECORD_NAME).write_text("{}")
    code, output = run_glus(args, capsys)
    assert code == 0, output
    assert "already complete" in output
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert (summary["skipped"], summary["outcomes"], summary["model"]) == (["v/0"], [], None)
