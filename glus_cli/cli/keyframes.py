"""`glus keyframes INPUT -e FILE [--ground-truth DIR]`: GLUS's key-frame pseudo-labels as score files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from glus_cli.batch import find_videos, load_expressions, plan_tasks
from glus_cli.cli.console import console, error_console
from glus_cli.cli.options import (
    ExpressionsOption,
    InputArgument,
    ModelArgs,
    ProtocolArgs,
    QuietOption,
    ResumableOutputDirOption,
    option_groups,
)
from glus_cli.cli.report import NoReportOption, write_run_report
from glus_cli.cli.runs import load_with_progress, progress_bar, report_failures, video_progress
from glus_cli.ground_truth import Layout
from glus_cli.keyframes import ground_truth_scores, run_keyframes
from glus_cli.outputs import prepare_output_dir


@option_groups
def keyframes(
    input_dir: InputArgument,
    expressions: ExpressionsOption,
    *,
    ground_truth: Annotated[
        Path | None,
        typer.Option(
            help="Dataset split with mask_dict.json (MeViS), Annotations/ (Ref-YouTube-VOS) or a mask tree: "
            "frames are ranked by IoU with it. Without it, by the model's own confidence (labelled so)."
        ),
    ] = None,
    layout: Annotated[Layout | None, typer.Option(help="Ground-truth layout (default: detected).")] = None,
    meta: Annotated[
        Path | None,
        typer.Option(help="The ground truth's meta_expressions.json (default: found as by glus eval)."),
    ] = None,
    model: ModelArgs,
    output_dir: ResumableOutputDirOption = None,
    protocol: ProtocolArgs,
    quiet: QuietOption = False,
    no_report: NoReportOption = False,
) -> None:
    """Run GLUS on every (video, expression), score each frame, and export the key frame of each.

    Writes OUT/keyframes.json ({"<video>_<exp_id>": "<frame name>"}, the official score file, usable with
    --keyframes), OUT/keyframe_scores.json (every frame's score, SAM2's predicted IoU and object score)
    and the masks under OUT/masks/. With --ground-truth also the KFS selector's training labels,
    OUT/kfs_labels/<video>/<exp_id>.json (a list of per-frame IoUs), for every expression whose frames
    were all segmented. Reruns resume; failed videos give exit code 8.

    Example:

      glus keyframes mevis/train/JPEGImages -e mevis/train/meta_expressions.json --ground-truth mevis/train
    """
    options = protocol.segmentation_options()
    tasks = plan_tasks(find_videos(input_dir), load_expressions(expressions))
    scorer = None
    if ground_truth is not None:
        scorer = ground_truth_scores(ground_truth, layout=layout, meta_path=meta)
        scorer.require(tasks)  # before the model loads
        if protocol.stride > 1 or protocol.max_frames is not None:
            error_console.print(
                "[yellow]warning:[/] KFS training labels need every frame: expressions whose frames "
                "--stride/--max-frames leave out get none",
                highlight=False,
            )
    out = prepare_output_dir(output_dir, resume=True)
    glus = load_with_progress(model, quiet)
    with progress_bar(quiet) as progress:
        run = run_keyframes(
            glus,
            tasks,
            out,
            options,
            scorer=scorer,
            stride=protocol.stride,
            max_frames=protocol.max_frames,
            on_video=video_progress(progress),
        )
    if scorer is None:
        console.print(
            "[yellow]no ground truth:[/] key frames ranked by the model's own confidence, "
            "not the paper's IoU pseudo-labels"
        )
    console.print(f"[green]wrote[/] {run.score_path} and {run.details_path} ({len(run.records)} expressions)")
    if run.labels is not None:
        labels = run.labels
        console.print(
            f"[green]wrote[/] {len(labels.written)} KFS training labels under {escape(str(labels.root))}"
        )
        if labels.unlabelled:
            error_console.print(
                f"[yellow]warning:[/] {len(labels.unlabelled)} expressions have no KFS training label, "
                f"some of their frames were not segmented (first: {escape(labels.unlabelled[0])})",
                highlight=False,
            )
    write_run_report(out, not no_report)
    report_failures(run.report)
