"""`glus batch INPUT --expressions FILE`: a dataset in the submission layout, resumable and shardable."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from glus_cli import __version__
from glus_cli.batch import (
    BatchHooks,
    BatchReport,
    KeyframeLookup,
    VideoTask,
    find_videos,
    load_expressions,
    parse_shard,
    plan_tasks,
    run_batch,
    select_shard,
)
from glus_cli.cli.app import app
from glus_cli.cli.console import console, error_console
from glus_cli.cli.options import (
    DEFAULT_MODEL,
    ContextFramesOption,
    ContextSamplerOption,
    DeviceOption,
    DTypeOption,
    FormatOption,
    FuserGammaOption,
    LLMBatchSizeOption,
    MaxFramesOption,
    MemStrideOption,
    ModelArgs,
    ModelOption,
    QuantizeOption,
    QueryFramesOption,
    QuietOption,
    ResumableOutputDirOption,
    RevisionOption,
    Sam2ConfigOption,
    ScheduleOption,
    Stopwatch,
    StrideOption,
    VisionTowerOption,
    default_formats,
    peak_memory,
    protocol_options,
)
from glus_cli.cli.segment import progress_bar
from glus_cli.errors import OutputError
from glus_cli.keyframes import keyframe_for, read_scores
from glus_cli.outputs import new_run_dir, validate_formats, write_json_atomic
from glus_cli.protocol import DEFAULT_SCHEDULE, MEM_STRIDE, num_query_steps
from glus_cli.runner import Expression

if TYPE_CHECKING:
    from glus_cli.model.glus import GlusModel
    from glus_cli.protocol import SegmentationOptions
    from glus_cli.video import VideoSource

EXIT_VIDEOS_FAILED = 8
"""Exit code of `glus batch` / `glus keyframes` when some videos failed (the others were done)."""

InputArgument = Annotated[
    Path,
    typer.Argument(help="Folder of videos or of frame folders (e.g. a dataset split's JPEGImages/)."),
]
ExpressionsOption = Annotated[
    Path,
    typer.Option(
        "--expressions",
        "-e",
        help="meta_expressions.json (MeViS, Ref-YouTube-VOS), JSON {video: {exp_id: text}} or "
        "{video: [text]}, or CSV with columns video, exp_id (optional), expression.",
    ),
]


def output_root(output_dir: Path | None) -> Path:
    """The run's output folder: the given one (created, or reused to resume), or a fresh runs/NNNN."""
    if output_dir is None:
        return new_run_dir(Path("runs"))
    if output_dir.exists() and not output_dir.is_dir():
        raise OutputError(f"{output_dir} exists and is not a folder")
    output_dir.mkdir(parents=True, exist_ok=True)
    return output_dir


def keyframe_lookup(path: Path | None) -> KeyframeLookup | None:
    """Key-frame indices from a score file, for `run_batch` (None: no key frames)."""
    if path is None:
        return None
    scores = read_scores(path)
    return lambda video, exp_id, frames: keyframe_for(scores, video, exp_id, frames)


def run_with_progress(
    glus: GlusModel,
    tasks: list[VideoTask],
    out: Path,
    formats: list[str],
    options: SegmentationOptions,
    *,
    stride: int,
    max_frames: int | None,
    keyframes: KeyframeLookup | None,
    quiet: bool,
    hooks: BatchHooks | None = None,
) -> BatchReport:
    """`run_batch` with one Rich progress bar per video (the `hooks`' own `on_video` is replaced)."""
    with progress_bar(quiet) as progress:

        def on_video(task: VideoTask, video: VideoSource, jobs: list[Expression]) -> Callable[[int], None]:
            total = sum(num_query_steps(video.num_frames, job.keyframe) for job in jobs)
            bar = progress.add_task(f"{task.name} ({len(jobs)} expressions)", total=total)
            return lambda _job: progress.advance(bar)

        base = hooks or BatchHooks()
        return run_batch(
            glus,
            tasks,
            out,
            formats,
            options,
            stride=stride,
            max_frames=max_frames,
            keyframe_for=keyframes,
            hooks=BatchHooks(base.is_done, on_video, base.on_result, base.on_video_done),
        )


def report_failures(report: BatchReport) -> None:
    """Print one line per failed video and exit with `EXIT_VIDEOS_FAILED` if there is any."""
    for failure in report.failures:
        error_console.print(f"[red]failed:[/] {failure.video}: {failure.error}", highlight=False)
    if report.failures:
        raise typer.Exit(EXIT_VIDEOS_FAILED)


@app.command()
def batch(
    input_dir: InputArgument,
    expressions: ExpressionsOption,
    model: ModelOption = DEFAULT_MODEL,
    revision: RevisionOption = None,
    vision_tower: VisionTowerOption = None,
    sam2_config: Sam2ConfigOption = None,
    device: DeviceOption = "auto",
    dtype: DTypeOption = "auto",
    quantize: QuantizeOption = None,
    fuser_gamma: FuserGammaOption = "checkpoint",
    output_dir: ResumableOutputDirOption = None,
    formats: FormatOption = None,
    context_frames: ContextFramesOption = 4,
    query_frames: QueryFramesOption = 4,
    mem_stride: MemStrideOption = MEM_STRIDE,
    context_sampler: ContextSamplerOption = "clips",
    keyframes: Annotated[
        Path | None,
        typer.Option(
            help='Key-frame score file {"<video>_<exp_id>": frame}: forward pass from each key frame, '
            "then backward to frame 0 (as GLUS-S).",
            rich_help_panel="GLUS protocol",
        ),
    ] = None,
    stride: StrideOption = 1,
    max_frames: MaxFramesOption = None,
    schedule: ScheduleOption = DEFAULT_SCHEDULE,
    llm_batch_size: LLMBatchSizeOption = None,
    shard: Annotated[
        str | None,
        typer.Option(
            help="i/n: this process does every n-th video (name order) from the i-th; shards are disjoint.",
            rich_help_panel="Output",
        ),
    ] = None,
    quiet: QuietOption = False,
) -> None:
    """Segment every expression of every video in INPUT_DIR into OUT/<video>/<exp_id>/<frame>.png.

    A rerun with the same --output-dir skips finished expressions and redoes unfinished ones. A video
    that fails is listed in OUT/summary.json and on stderr, and the exit code is 8; the others are done.

    Examples:

      glus batch mevis/valid_u/JPEGImages -e mevis/valid_u/meta_expressions.json -o preds/

      glus batch videos/ -e expressions.csv --shard 0/2 -o preds/   (and --shard 1/2 elsewhere)
    """
    watch = Stopwatch()
    shard_index, shard_count = parse_shard(shard) if shard is not None else (0, 1)
    formats_used = list(validate_formats(default_formats(formats)))
    options = protocol_options(
        context_frames, query_frames, mem_stride, context_sampler, schedule, llm_batch_size
    )
    model_args = ModelArgs(model, revision, vision_tower, sam2_config, device, dtype, quantize, fuser_gamma)
    lookup = keyframe_lookup(keyframes)
    tasks = plan_tasks(find_videos(input_dir), load_expressions(expressions))
    tasks = select_shard(tasks, shard_index, shard_count)
    out = output_root(output_dir)
    with watch.time("load_model"):
        glus = model_args.load()
    with watch.time("segment"):
        report = run_with_progress(
            glus,
            tasks,
            out,
            formats_used,
            options,
            stride=stride,
            max_frames=max_frames,
            keyframes=lookup,
            quiet=quiet,
        )
    summary_name = (
        "summary.json" if shard_count == 1 else f"summary.shard-{shard_index}-of-{shard_count}.json"
    )
    write_json_atomic(
        out / summary_name,
        {
            "glus_cli_version": __version__,
            "command": "batch",
            "input": str(input_dir),
            "expressions_file": str(expressions),
            "shard": f"{shard_index}/{shard_count}",
            **report.as_dict(),
            "model": asdict(glus.info),
            "options": {
                **asdict(options),
                "keyframes": None if keyframes is None else str(keyframes),
                "formats": formats_used,
                "stride": stride,
                "max_frames": max_frames,
            },
            "timings_seconds": watch.seconds,
            "memory": peak_memory(),
        },
    )
    if not quiet:
        table = Table(title=f"glus batch: {len(tasks)} videos")
        for column in ("expressions", "done now", "already complete", "failed videos"):
            table.add_column(column)
        table.add_row(
            str(report.expressions),
            str(len(report.outcomes)),
            str(len(report.skipped)),
            str(len(report.failures)),
        )
        console.print(table)
    console.print(f"[green]wrote[/] {out}")
    report_failures(report)
