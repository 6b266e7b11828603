"""What every model-running command shares at the CLI edge: progress, timings, memory, `summary.json`.

`glus segment`, `glus batch` and `glus keyframes` each parse their options, call the library, and use
these helpers to show progress, report failed videos, and describe the run in one `summary.json` with
one set of keys (documented in the README):

- ``glus_cli_version``, ``command``;
- the command's inputs (``source`` and ``video`` for segment; ``input`` and ``expressions_file``, with
  ``shard`` for batch and ``ground_truth`` for keyframes);
- its results (``expressions`` for segment; the batch report's counts, ``failures`` and ``outcomes`` for
  batch and keyframes, which adds its ``ranking``, files and ``kfs_labels``);
- ``model``: where the weights came from and the numeric settings (`ModelInfo` as a dict; None when
  no model was loaded because nothing was pending);
- ``options``: the protocol settings (`SegmentationOptions`) and the run settings (`RunSettings`:
  formats, stride, max_frames, keyframe, keyframes_file);
- ``timings_seconds`` per stage and ``memory`` (peak RSS, peak CUDA memory).
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from glus_cli import __version__
from glus_cli.batch import BatchHooks, BatchReport, VideoTask, run_batch
from glus_cli.cli.console import error_console
from glus_cli.plural import plural
from glus_cli.protocol import num_query_steps

if TYPE_CHECKING:
    from glus_cli.batch import KeyframeLookup
    from glus_cli.model.glus import GlusModel
    from glus_cli.model_spec import ModelSpec
    from glus_cli.protocol import SegmentationOptions, Workload
    from glus_cli.runner import Expression
    from glus_cli.video import VideoSource

SUMMARY_NAME = "summary.json"
EXIT_VIDEOS_FAILED = 8
"""Exit code of `glus batch` / `glus keyframes` when some videos failed (the others were done)."""


PLAIN_PROGRESS_SECONDS = 10.0
"""Seconds between two plain progress lines of one task (stderr not a terminal)."""


def progress_bar(quiet: bool) -> Progress | PlainProgress:
    """The progress display of every long-running command: Rich bars on a terminal, plain lines on stderr
    otherwise (`2>log`, nohup, Slurm), where Rich would not redraw until the end; nothing with --quiet.

    Tasks may take a `unit` field ("frames", "steps"); plain lines give the rate and ETA of frames.
    """
    if not quiet and not error_console.is_terminal:
        return PlainProgress()
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        CountColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=error_console,
        disable=quiet,
        transient=False,
    )


class CountColumn(ProgressColumn):
    """``40/120 frames``; nothing while the total is unknown (no ``0/?``)."""

    def render(self, task: Task) -> Text:
        """The task's count and unit."""
        if task.total is None:
            return Text("")
        unit = task.fields.get("unit", "")
        count = f"{task.completed:g}/{task.total:g}" + (f" {unit}" if unit else "")
        return Text(count, style="progress.download")


@dataclass
class _PlainTask:
    description: str
    total: float | None
    unit: str
    started: float
    completed: float = 0.0
    printed: float = 0.0


class PlainProgress:
    """Progress as plain lines on stderr, for logs: one line when a task starts, then at most one every
    `PLAIN_PROGRESS_SECONDS`, and one when it completes; e.g.
    ``clip (2 expressions): 40/120 frames, 2.5 fps, eta 0:00:32``.

    It takes the calls the commands make on Rich's `Progress` (`add_task`, `advance`, `update`).
    """

    def __init__(self) -> None:
        self._tasks: list[_PlainTask] = []

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def add_task(self, description: str, total: float | None = None, unit: str = "") -> int:
        """Start a task; returns its id."""
        now = time.monotonic()
        self._tasks.append(_PlainTask(description, total, unit, now))
        self._print(self._tasks[-1], now)
        return len(self._tasks) - 1

    def advance(self, task_id: int, advance: float = 1) -> None:
        """Count `advance` more units done."""
        self.update(task_id, completed=self._tasks[task_id].completed + advance)

    def update(
        self,
        task_id: int,
        *,
        completed: float | None = None,
        total: float | None = None,
        description: str | None = None,
    ) -> None:
        """Change a task; print its line if it completed or the last line is old enough."""
        task = self._tasks[task_id]
        task.description = description if description is not None else task.description
        task.total = total if total is not None else task.total
        finished_before = task.total is not None and task.completed >= task.total
        task.completed = completed if completed is not None else task.completed
        now = time.monotonic()
        finished = task.total is not None and task.completed >= task.total
        if (finished and not finished_before) or now - task.printed >= PLAIN_PROGRESS_SECONDS:
            self._print(task, now)

    def _print(self, task: _PlainTask, now: float) -> None:
        task.printed = now
        unit = f" {task.unit}" if task.unit else ""
        if task.total is None:  # a count of unknown total means nothing until something is done
            line = task.description + (f": {task.completed:g}{unit}" if task.completed else "")
        else:
            line = f"{task.description}: {task.completed:g}/{task.total:g}{unit}"
        elapsed = now - task.started
        if task.unit == "frames" and task.completed and elapsed > 0:
            rate = task.completed / elapsed
            line += f", {rate:.2f} fps"
            if task.total is not None:
                line += f", eta {_clock((task.total - task.completed) / rate)}"
        error_console.print(line, markup=False, highlight=False, soft_wrap=True)


def _clock(seconds: float) -> str:
    """``H:MM:SS``."""
    whole = max(0, round(seconds))
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def load_with_progress(model: ModelSpec, quiet: bool, workload: Workload) -> GlusModel:
    """Load the model after the memory check for `workload` (the preamble's last step), showing its steps
    (weight shards, LLaMA and CLIP, SAM2) as one progress task, then the run header: device, precision
    and why, and the memory estimate (both silenced by --quiet)."""
    with progress_bar(quiet) as progress:
        task = progress.add_task(f"loading {model.source}", total=None, unit="steps")

        def on_progress(step: str, done: int, total: int) -> None:
            progress.update(task, completed=done, total=total, description=f"loading {model.source}: {step}")

        glus = model.load(workload, on_progress)
    if not quiet:
        info = glus.info
        error_console.print(
            f"{info.source} on {info.device} in {info.dtype} ({info.dtype_reason}); "
            f"about {info.memory_estimate_gb:.1f} GB",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    return glus


def run_with_progress(
    glus: GlusModel,
    tasks: list[VideoTask],
    out: Path,
    formats: list[str],
    options: SegmentationOptions,
    *,
    stride: int,
    max_frames: int | None,
    folder_fps: float,
    keyframes: KeyframeLookup | None,
    quiet: bool,
) -> BatchReport:
    """`run_batch` with one Rich progress bar per video."""
    with progress_bar(quiet) as progress:
        return run_batch(
            glus,
            tasks,
            out,
            formats,
            options,
            stride=stride,
            max_frames=max_frames,
            folder_fps=folder_fps,
            keyframe_for=keyframes,
            hooks=BatchHooks(on_video=video_progress(progress)),
        )


def video_progress(
    progress: Progress,
) -> Callable[[VideoTask, VideoSource, list[Expression]], Callable[[int], None]]:
    """A `BatchHooks.on_video` adding one bar per video to `progress`, advanced after each query step."""

    def on_video(task: VideoTask, video: VideoSource, jobs: list[Expression]) -> Callable[[int], None]:
        total = sum(num_query_steps(video.num_frames, job.keyframe) for job in jobs)
        label = f"{task.name} ({plural(len(jobs), 'expression')})"
        bar = progress.add_task(label, total=total, unit="frames")
        return lambda _job: progress.advance(bar)

    return on_video


def report_failures(report: BatchReport) -> None:
    """Print one line per failed video and exit with `EXIT_VIDEOS_FAILED` if there is any."""
    for failure in report.failures:
        line = f"[red]failed:[/] {failure.label}: {failure.error}"
        error_console.print(line, highlight=False, soft_wrap=True)
    if report.failures:
        raise typer.Exit(EXIT_VIDEOS_FAILED)


class Stopwatch:
    """Named wall-clock stages for run summaries."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def time(self, stage: str) -> Iterator[None]:
        """Add the elapsed time of the `with` block to `stage`."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = round(self.seconds.get(stage, 0.0) + time.perf_counter() - start, 3)


def peak_memory() -> dict[str, float]:
    """Peak resident memory of this process (and CUDA allocations when a GPU was used), in MiB."""
    peak = {"peak_rss_mib": round(peak_rss_bytes() / 2**20, 1)}
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        peak["peak_cuda_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return peak


def peak_rss_bytes() -> int:
    """This process's own peak resident memory, in bytes.

    On Linux this is `VmHWM` (the high-water mark of this process's memory, from /proc/self/status), not
    `ru_maxrss`: the kernel keeps the larger `maxrss` across exec, and Python starts child processes with
    vfork, so the `ru_maxrss` of a `glus` started from a 3 GB notebook or test run says 3 GB whatever
    `glus` used. Elsewhere `ru_maxrss` (bytes on macOS, KiB on the other systems).
    """
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text(encoding="ascii", errors="replace").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # "VmHWM:   123456 kB"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024


@dataclass(frozen=True)
class RunSettings:
    """The settings of a run beyond the protocol: what is written, and which frames are read.

    Attributes:
        formats: output formats.
        stride: every `stride`-th frame of the source is used.
        max_frames: at most this many frames (after the stride); None: all.
        keyframe: the key frame given with `glus segment --keyframe`, if any.
        keyframes_file: the key-frame score file, if any.
    """

    formats: tuple[str, ...]
    stride: int = 1
    max_frames: int | None = None
    keyframe: int | None = None
    keyframes_file: str | None = None


def build_summary(
    command: str,
    *,
    inputs: Mapping[str, Any],
    results: Mapping[str, Any],
    model: Mapping[str, Any] | None,
    options: SegmentationOptions,
    settings: RunSettings,
    watch: Stopwatch,
) -> dict[str, Any]:
    """The `summary.json` of a run, with the keys every command shares (see the module docstring)."""
    return {
        "glus_cli_version": __version__,
        "command": command,
        **inputs,
        **results,
        "model": None if model is None else dict(model),
        "options": {**asdict(options), **asdict(settings), "formats": list(settings.formats)},
        "timings_seconds": watch.seconds,
        "memory": peak_memory(),
    }
