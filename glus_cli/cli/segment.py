"""`glus segment SOURCE EXPRESSION...`: one video, one or more expressions, every output format."""

from __future__ import annotations

import re
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from glus_cli import __version__
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
    RevisionOption,
    Sam2ConfigOption,
    ScheduleOption,
    Stopwatch,
    StrideOption,
    VisionTowerOption,
    default_formats,
    peak_memory,
    protocol_options,
    resolve_output_dir,
)
from glus_cli.errors import InputError
from glus_cli.keyframes import keyframe_for, read_scores
from glus_cli.model.prompt import normalize_expression
from glus_cli.outputs import validate_formats, write_json_atomic
from glus_cli.protocol import DEFAULT_SCHEDULE, MEM_STRIDE, num_query_steps
from glus_cli.runner import Expression, segment_to_outputs
from glus_cli.video import open_video

SUMMARY_NAME = "summary.json"


def progress_bar(quiet: bool) -> Progress:
    """The Rich progress display used by the model-running commands (disabled with --quiet)."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=error_console,
        disable=quiet,
        transient=False,
    )


def expression_folder(index: int, text: str) -> str:
    """Output folder of the index-th expression: `00-the-dog-that-jumps` (index keeps names unique)."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:48].rstrip("-")
    return f"{index:02d}-{slug}" if slug else f"{index:02d}"


@app.command()
def segment(
    source: Annotated[
        str, typer.Argument(help="Video file, folder of frames, or a glob such as 'clip/*.jpg'.")
    ],
    expressions: Annotated[list[str], typer.Argument(help="One or more referring expressions.")],
    model: ModelOption = DEFAULT_MODEL,
    revision: RevisionOption = None,
    vision_tower: VisionTowerOption = None,
    sam2_config: Sam2ConfigOption = None,
    device: DeviceOption = "auto",
    dtype: DTypeOption = "auto",
    quantize: QuantizeOption = None,
    fuser_gamma: FuserGammaOption = "checkpoint",
    output_dir: Annotated[
        Path | None,
        typer.Option(
            "--output-dir",
            "-o",
            help="New or empty folder (default: a fresh runs/NNNN).",
            rich_help_panel="Output",
        ),
    ] = None,
    formats: FormatOption = None,
    context_frames: ContextFramesOption = 4,
    query_frames: QueryFramesOption = 4,
    mem_stride: MemStrideOption = MEM_STRIDE,
    context_sampler: ContextSamplerOption = "clips",
    keyframe: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Key-frame index: forward pass from it, then backward to frame 0.",
            rich_help_panel="GLUS protocol",
        ),
    ] = None,
    keyframes: Annotated[
        Path | None,
        typer.Option(
            help='Key-frame score file {"<video>_<exp_id>": frame} (expression ids are 0, 1, ... in '
            "argument order), as written by glus keyframes or the official KFS.",
            rich_help_panel="GLUS protocol",
        ),
    ] = None,
    stride: StrideOption = 1,
    max_frames: MaxFramesOption = None,
    schedule: ScheduleOption = DEFAULT_SCHEDULE,
    llm_batch_size: LLMBatchSizeOption = None,
    quiet: QuietOption = False,
) -> None:
    """Segment the object each EXPRESSION refers to in SOURCE and write the masks.

    Examples:

      glus segment video.mp4 "the dog that jumps first"

      glus segment frames/ "the red car" "the person on the left" -f png -f overlay -o out/

      glus segment video.mp4 "the cat" --model ./my-checkpoint --device cpu --max-frames 200
    """
    texts = list(expressions)
    for text in texts:
        normalize_expression(text)  # reject empty / reserved expressions before any work
    formats_used = list(validate_formats(default_formats(formats)))
    options = protocol_options(
        context_frames, query_frames, mem_stride, context_sampler, schedule, llm_batch_size
    )
    model_args = ModelArgs(model, revision, vision_tower, sam2_config, device, dtype, quantize, fuser_gamma)
    watch = Stopwatch()

    if keyframe is not None and keyframes is not None:
        raise InputError("give either --keyframe or --keyframes, not both")
    scores = read_scores(keyframes) if keyframes is not None else None

    with open_video(source, stride=stride, max_frames=max_frames) as video:
        if keyframe is not None and keyframe >= video.num_frames:
            raise InputError(f"--keyframe {keyframe} is outside the video's {video.num_frames} frames")
        jobs = [
            Expression(
                str(i),
                text,
                keyframe if scores is None else keyframe_for(scores, video.name, str(i), video.frame_names),
            )
            for i, text in enumerate(texts)
        ]
        existed = output_dir is not None and output_dir.is_dir()
        out = resolve_output_dir(output_dir)
        try:
            from glus_cli.model.footprint import Workload  # imports torch: only when a model runs

            with watch.time("load_model"):
                glus = model_args.load(
                    Workload(video.frame_size, llm_batch_size, context_frames, query_frames), quiet
                )
        except BaseException:
            if not existed and not any(out.iterdir()):  # leave no empty runs/NNNN behind a failed load
                out.rmdir()
            raise
        folders = [out / expression_folder(i, text) for i, text in enumerate(texts)]
        with progress_bar(quiet) as progress:
            tasks = [
                progress.add_task(
                    f"{video.name}: {job.text[:40]}", total=num_query_steps(video.num_frames, job.keyframe)
                )
                for job in jobs
            ]
            with watch.time("segment"):
                outcomes = segment_to_outputs(
                    glus,
                    video,
                    jobs,
                    folders,
                    formats_used,
                    options,
                    on_step=lambda i: progress.advance(tasks[i]),
                )
        summary = {
            "glus_cli_version": __version__,
            "command": "segment",
            "source": str(source),
            "video": {
                "name": video.name,
                "frames": video.num_frames,
                "fps": video.fps,
                "frame_size": list(video.frame_size),
                "stride": stride,
                "max_frames": max_frames,
            },
            "expressions": [asdict(outcome) for outcome in outcomes],
            "model": asdict(glus.info),
            "options": {
                **asdict(options),
                "keyframe": keyframe,
                "keyframes_file": str(keyframes) if keyframes else None,
                "formats": formats_used,
            },
            "timings_seconds": watch.seconds,
            "memory": peak_memory(),
        }
        write_json_atomic(out / SUMMARY_NAME, summary)

    if not quiet:
        table = Table(title=f"glus segment: {video.name} ({video.num_frames} frames)")
        for column in ("expression", "folder", "frames w/o [SEG]", "mean pred. IoU", "seconds"):
            table.add_column(column)
        for outcome in outcomes:
            iou = f"{outcome.mean_predicted_iou:.3f}" if outcome.mean_predicted_iou is not None else "-"
            table.add_row(
                outcome.text,
                Path(outcome.output_dir).name,
                str(len(outcome.frames_without_seg)),
                iou,
                f"{outcome.seconds:.1f}",
            )
        console.print(table)
    console.print(f"[green]wrote[/] {out}")
