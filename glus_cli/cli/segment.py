"""`glus segment SOURCE EXPRESSION...`: one video, one or more expressions, every output format."""

from __future__ import annotations

import logging
import re
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from glus_cli.cli.console import console
from glus_cli.cli.options import (
    FormatOption,
    FpsOption,
    ModelArgs,
    ProtocolArgs,
    QuietOption,
    ResumableOutputDirOption,
    default_formats,
    option_groups,
)
from glus_cli.cli.preamble import check_expressions, checked_spec, resolved_model, say_already_complete
from glus_cli.cli.report import NoReportOption, write_run_report
from glus_cli.cli.runs import (
    SUMMARY_NAME,
    RunSettings,
    Stopwatch,
    build_summary,
    load_with_progress,
    progress_bar,
)
from glus_cli.errors import InputError
from glus_cli.files import write_json_atomic
from glus_cli.keyframe_files import keyframe_for, read_scores
from glus_cli.model.prompt import normalize_expression
from glus_cli.outputs import validate_formats
from glus_cli.plural import plural
from glus_cli.protocol import Workload, num_query_steps
from glus_cli.resume import pending, restart
from glus_cli.run_record import read_outcome, resumable_run
from glus_cli.runner import Expression, segment_to_outputs
from glus_cli.video import DEFAULT_FPS, open_video

logger = logging.getLogger(__name__)


def expression_folder(index: int, text: str) -> str:
    """Output folder of the index-th expression: `00-the-dog-that-jumps` (index keeps names unique)."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:48].rstrip("-")
    return f"{index:02d}-{slug}" if slug else f"{index:02d}"


@option_groups
def segment(
    source: Annotated[
        str, typer.Argument(help="Video file, folder of frames, or a glob such as 'clip/*.jpg'.")
    ],
    expressions: Annotated[list[str], typer.Argument(help="One or more referring expressions.")],
    *,
    model: ModelArgs,
    output_dir: ResumableOutputDirOption = None,
    formats: FormatOption = None,
    protocol: ProtocolArgs,
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
    fps: FpsOption = DEFAULT_FPS,
    quiet: QuietOption = False,
    no_report: NoReportOption = False,
) -> None:
    """Segment the object each EXPRESSION refers to in SOURCE and write the masks.

    An interrupted run is finished by rerunning the same command with the same --output-dir: finished
    expressions are kept, the others redone; a finished run says "already complete" without loading the
    model. A rerun with other options into that folder is refused.

    Examples:

      glus segment video.mp4 "the dog that jumps first"

      glus segment frames/ "the red car" "the person on the left" -f png -f overlay -o out/

      glus segment video.mp4 "the cat" --model ./my-checkpoint --device cpu --max-frames 200
    """
    # 1. options
    texts = list(expressions)
    for text in texts:
        normalize_expression(text)  # reject empty / reserved expressions before any work
    formats_used = list(validate_formats(default_formats(formats)))
    options = protocol.segmentation_options()
    stride, max_frames = protocol.stride, protocol.max_frames
    if keyframe is not None and keyframes is not None:
        raise InputError("give either --keyframe or --keyframes, not both")
    spec = checked_spec(model.spec())
    watch = Stopwatch()
    record = {
        "command": "segment",
        "source": str(Path(source).absolute()),
        "expressions": texts,
        "model": asdict(model),
        "protocol": asdict(protocol),
        "formats": formats_used,
        "keyframe": keyframe,
        "keyframes": None if keyframes is None else str(keyframes.absolute()),
        "fps": fps,
    }

    with (
        open_video(source, stride=stride, max_frames=max_frames, folder_fps=fps) as video,  # 2. the input
        # 3. the key-frame file, read before anything is written
        nullcontext(read_scores(keyframes) if keyframes is not None else None) as scores,
        resumable_run(output_dir, record) as out,  # 4. the output folder
    ):
        if keyframe is not None and keyframe >= video.num_frames:
            frames = plural(video.num_frames, "frame")
            raise InputError(f"--keyframe {keyframe} is outside the video's {frames}")
        jobs = [
            Expression(
                str(i),
                text,
                keyframe if scores is None else keyframe_for(scores, video.name, str(i), video.frame_names),
            )
            for i, text in enumerate(texts)
        ]
        folders = [out / expression_folder(i, text) for i, text in enumerate(texts)]
        todo = pending(folders)  # 5. the resume rule
        if todo and len(todo) < len(jobs):
            kept = len(jobs) - len(todo)
            logger.info("%s: %d of %d expressions are complete and kept", out, kept, len(jobs))
        glus = None
        if todo:
            check_expressions(resolved_model(spec), texts, options)  # 6. the model's files and tokenizer
            for index in todo:
                restart(folders[index])
            with watch.time("load_model"):  # 7. the memory check, then the load
                glus = load_with_progress(spec, quiet, Workload.of_run(options, video.frame_size))
            with progress_bar(quiet) as progress:
                tasks = {
                    i: progress.add_task(
                        f"{video.name}: {jobs[i].text[:40]}",
                        total=num_query_steps(video.num_frames, jobs[i].keyframe),
                        unit="frames",
                    )
                    for i in todo
                }
                with watch.time("segment"):
                    segment_to_outputs(
                        glus,
                        video,
                        [jobs[i] for i in todo],
                        [folders[i] for i in todo],
                        formats_used,
                        options,
                        on_step=lambda k: progress.advance(tasks[todo[k]]),
                    )
        outcomes = [read_outcome(folder) for folder in folders]  # the kept ones and the new ones
        if glus is not None or not (out / SUMMARY_NAME).is_file():
            summary = build_summary(
                "segment",
                inputs={
                    "source": str(source),
                    "video": {
                        "name": video.name,
                        "frames": video.num_frames,
                        "fps": video.fps,
                        "frame_size": list(video.frame_size),
                    },
                },
                results={"expressions": [asdict(outcome) for outcome in outcomes]},
                model=None if glus is None else asdict(glus.info),
                options=options,
                settings=RunSettings(
                    tuple(formats_used), stride, max_frames, keyframe, str(keyframes) if keyframes else None
                ),
                watch=watch,
            )
            write_json_atomic(out / SUMMARY_NAME, summary)

    if glus is None:
        say_already_complete(out, len(outcomes))
        write_run_report(out, not no_report)
        return
    if not quiet:
        table = Table(title=f"glus segment: {video.name} ({plural(video.num_frames, 'frame')})")
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
    write_run_report(out, not no_report)
