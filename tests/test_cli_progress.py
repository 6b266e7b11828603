"""Progress without a terminal (`2>log`, nohup, Slurm): plain lines on stderr while the run goes on.

Rich does not redraw when stderr is not a terminal, so the log would stay empty until the end; the
commands print plain lines instead: the loading steps, then frames done, fps and ETA per task.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from glus_cli import pipeline
from glus_cli.cli import runs
from glus_cli.cli.app import main
from glus_cli.testing.videos import write_synthetic_video

pytest_plugins = ["tests.cli_fixtures"]
pytestmark = pytest.mark.usefixtures("cli_environment")

FAST = ["--context-frames", "1", "--query-frames", "1", "--device", "cpu"]
FRAME_LINE = re.compile(r": \d+/\d+ frames, [0-9.]+ fps, eta \d+:\d\d:\d\d$")


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_video(tmp_path_factory.mktemp("video") / "clip.mp4", 4, size=(40, 56), fps=5.0)


@pytest.fixture(autouse=True)
def _a_line_at_every_step(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runs, "PLAIN_PROGRESS_SECONDS", 0.0)  # a line at every step, not every 10 s


class LogSnapshots:
    """Runs `glus` with stderr going to a buffer (not a terminal) and keeps its content mid-run."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, after_results: int) -> None:
        self.stderr = io.StringIO()
        self.mid_run: str | None = None
        real = pipeline.segment_video

        def watched(*args: object, **kwargs: object) -> Iterator[object]:
            for count, result in enumerate(real(*args, **kwargs)):
                if count == after_results:
                    self.mid_run = self.stderr.getvalue()
                yield result

        monkeypatch.setattr(pipeline, "segment_video", watched)

    def run(self, *args: str) -> tuple[int, str]:
        """Exit code and the whole of stderr."""
        old_argv, sys.argv = sys.argv, ["glus", *args]
        code = 0
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(self.stderr):
                main()
        except SystemExit as exited:
            code = exited.code if isinstance(exited.code, int) else 1
        finally:
            sys.argv = old_argv
        return code, self.stderr.getvalue()


def test_segment_logs_progress_lines_while_it_runs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, cli_checkpoint: Path, video: Path
) -> None:
    log = LogSnapshots(monkeypatch, after_results=2)
    code, err = log.run("segment", str(video), "the dog", "--model", str(cli_checkpoint), "-o", "out", *FAST)
    assert code == 0, err
    assert log.mid_run is not None
    mid_lines = log.mid_run.splitlines()
    # Loading: every step, then the frames of the expression, already in the log after two frames.
    assert f"loading {cli_checkpoint}: ready: 4/4 steps" in mid_lines, log.mid_run
    assert any(line.startswith(f"loading {cli_checkpoint}: weights 1/2") for line in mid_lines), log.mid_run
    assert any(line.startswith("clip: the dog: 2/4 frames") and FRAME_LINE.search(line) for line in mid_lines)
    assert any(line.startswith("clip: the dog: 4/4 frames") for line in err.splitlines()), err
    assert "━" not in err  # no Rich bars in a log


def test_quiet_logs_nothing(monkeypatch: pytest.MonkeyPatch, cli_checkpoint: Path, video: Path) -> None:
    log = LogSnapshots(monkeypatch, after_results=1)
    code, err = log.run(
        "segment", str(video), "the dog", "--model", str(cli_checkpoint), "-o", "out", "-q", *FAST
    )
    assert code == 0, err
    assert err == ""


def test_batch_logs_progress_lines(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, cli_checkpoint: Path, video: Path
) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "clip.mp4").write_bytes(video.read_bytes())
    expressions = tmp_path / "expressions.json"
    expressions.write_text(json.dumps({"clip": ["the dog", "the cat"]}))
    log = LogSnapshots(monkeypatch, after_results=3)
    code, err = log.run(
        "batch", str(videos), "-e", str(expressions), "--model", str(cli_checkpoint), "-o", "out", *FAST
    )
    assert code == 0, err
    assert log.mid_run is not None
    assert any(
        line.startswith("clip (2 expressions): 3/8 frames") and FRAME_LINE.search(line)
        for line in log.mid_run.splitlines()
    ), log.mid_run
    assert "clip (2 expressions): 8/8 frames" in err


def test_plain_lines_come_at_a_steady_pace(monkeypatch: pytest.MonkeyPatch) -> None:
    """One line at the start, then none until `PLAIN_PROGRESS_SECONDS` have passed, and one at the end."""
    clock = iter([0.0, 1.0, 2.0, 11.0, 12.0, 13.0])
    monkeypatch.setattr(runs, "PLAIN_PROGRESS_SECONDS", 10.0)
    monkeypatch.setattr(runs.time, "monotonic", lambda: next(clock))
    buffer = io.StringIO()
    with contextlib.redirect_stderr(buffer):
        progress = runs.PlainProgress()
        task = progress.add_task("clip: the dog", total=5, unit="frames")  # t=0: printed
        for _ in range(5):  # t=1, 2: quiet; t=11: printed; t=12: quiet; t=13: finished, printed
            progress.advance(task)
    assert buffer.getvalue().splitlines() == [
        "clip: the dog: 0/5 frames",
        "clip: the dog: 3/5 frames, 0.27 fps, eta 0:00:07",
        "clip: the dog: 5/5 frames, 0.38 fps, eta 0:00:00",
    ]
