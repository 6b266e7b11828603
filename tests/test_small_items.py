"""Issue 18's small items: measured per-expression seconds, --fps for frame folders, the device as given,
plurals, and no `0/?` in plain progress lines."""

from __future__ import annotations

import io
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from cli_helpers import run_glus
from rich.console import Console
from rich.progress import Progress, TextColumn

import glus_cli.runner as runner_module
from glus_cli.cli.runs import CountColumn, PlainProgress
from glus_cli.errors import ResourceError
from glus_cli.model.glus import resolve_device
from glus_cli.plural import plural
from glus_cli.runner import ExpressionClock
from glus_cli.testing.videos import write_frame_folder

pytest_plugins = ["tests.cli_fixtures"]


def test_plural() -> None:
    assert [plural(n, "frame") for n in (0, 1, 2)] == ["0 frames", "1 frame", "2 frames"]
    assert plural(1, "CUDA GPU") == "1 CUDA GPU"


def test_clock_splits_a_frame_between_the_expressions_at_it(monkeypatch: pytest.MonkeyPatch) -> None:
    ticks = iter([0.0, 4.0, 4.0, 7.0, 7.5])
    monkeypatch.setattr(runner_module, "time", SimpleNamespace(perf_counter=lambda: next(ticks)))
    clock = ExpressionClock(2)
    clock.charge((0, "forward"), 0)  # 4 s: frame 0's shared work and expression 0's answer
    clock.charge((0, "forward"), 1)  # 0 s: expression 1's answer came with it
    clock.charge((1, "forward"), 0)  # 3 s: frame 1, expression 0 alone
    clock.charge((1, "backward"), 1)  # 0.5 s: the same frame in another pass
    clock.add(1, 1.0)  # its preview and record
    assert clock.totals() == [5.0, 3.5]


@pytest.mark.usefixtures("cli_environment")
@pytest.mark.parametrize(("schedule", "expected"), [("reference", [3.0, 0.0]), ("fast", [1.5, 1.5])])
def test_seconds_are_measured_per_expression(
    cli_checkpoint: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    schedule: str,
    expected: list[float],
) -> None:
    """A clock that only the first expression's frames advance, by 1 s each: in the reference schedule
    the expressions run one after another, so it alone is charged; in the fast one they share each frame."""
    write_frame_folder(Path("frames"), 3, size=(32, 48))
    now = [100.0]
    monkeypatch.setattr(runner_module, "time", SimpleNamespace(perf_counter=lambda: now[0]))
    real_add = runner_module.PreviewSheet.add

    def one_second_for_the_first(self: object, result: runner_module.FrameResult) -> None:
        if result.expression_index == 0:
            now[0] += 1.0
        real_add(self, result)

    monkeypatch.setattr(runner_module.PreviewSheet, "add", one_second_for_the_first)
    args = ["segment", "frames", "the dog", "the cat", "--model", str(cli_checkpoint), "--device", "cpu"]
    code, output = run_glus([*args, "--schedule", schedule, "-o", "out", "-q"], capsys)
    assert code == 0, output
    summary = json.loads(Path("out/summary.json").read_text())
    assert [record["seconds"] for record in summary["expressions"]] == expected
    record = json.loads((Path(summary["expressions"][0]["output_dir"]) / "expression.json").read_text())
    assert record["seconds"] == expected[0]


@pytest.mark.usefixtures("cli_environment")
def test_fps_of_a_frame_folder_and_singular_counts(
    cli_checkpoint: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    write_frame_folder(Path("frames"), 1, size=(32, 48))
    args = ["segment", "frames", "the dog", "--model", str(cli_checkpoint), "--device", "cpu", "-o", "out"]
    code, output = run_glus([*args, "--fps", "12.5"], capsys)
    assert code == 0, output
    summary = json.loads(Path("out/summary.json").read_text())
    assert summary["video"]["fps"] == 12.5
    assert "glus segment: frames (1 frame)" in output, output
    assert "(1 frames)" not in output and "0/?" not in output, output


@pytest.mark.usefixtures("cli_environment")
def test_fps_of_frame_folders_in_a_batch(cli_checkpoint: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`glus batch --fps` times frame-folder overlays; a rerun with another rate is refused."""
    import av

    write_frame_folder(Path("videos/clip"), 2, size=(32, 48))
    Path("expressions.json").write_text(json.dumps({"clip": ["the dog"]}))
    args = ["batch", "videos", "-e", "expressions.json", "--model", str(cli_checkpoint), "--device", "cpu"]
    args += ["-o", "out", "-f", "overlay", "--quiet"]
    code, output = run_glus([*args, "--fps", "10"], capsys)
    assert code == 0, output
    with av.open("out/clip/0/overlay.mp4") as container:
        assert container.streams.video[0].average_rate == 10
    code, output = run_glus([*args, "--fps", "12"], capsys)
    assert code == 5 and "fps: was 10.0, now 12.0" in output, output


def test_plain_progress_without_a_total_says_no_count(capsys: pytest.CaptureFixture[str]) -> None:
    progress = PlainProgress()
    task = progress.add_task("loading Swindl/GLUS-A", total=None, unit="steps")
    progress.update(task, completed=2, total=5, description="loading Swindl/GLUS-A: SAM2")
    progress.update(task, completed=5)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "loading Swindl/GLUS-A"
    assert lines[-1] == "loading Swindl/GLUS-A: SAM2: 5/5 steps"


def test_device_is_reported_as_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ResourceError, match=r"--device cuda:1 was asked for"):
        resolve_device("cuda:1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ResourceError, match=r"--device cuda:1 .* shows 1 CUDA GPU \(cuda:0 to cuda:0"):
        resolve_device("cuda:1")


def test_terminal_progress_shows_no_count_without_a_total() -> None:
    console = Console(file=io.StringIO(), width=100)
    progress = Progress(TextColumn("{task.description}"), CountColumn(), console=console)
    task = progress.add_task("loading", total=None, unit="steps")
    assert progress.tasks[task].total is None
    assert str(CountColumn().render(progress.tasks[task])) == ""
    progress.update(task, total=5, completed=2)
    assert str(CountColumn().render(progress.tasks[task])) == "2/5 steps"
