"""`glus keyframes INPUT -e FILE [--ground-truth DIR]`: GLUS's key-frame pseudo-labels as score files."""

from __future__ import annotations

from dataclasses import asdict
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
    SkipMissingOption,
    option_groups,
)
from glus_cli.cli.preamble import (
    checked_spec,
    pending_count,
    refuse_long_expressions,
    resolved_model,
    say_already_complete,
    with_refused,
)
from glus_cli.cli.report import NoReportOption, write_run_report
from glus_cli.cli.runs import (
    SUMMARY_NAME,
    RunSettings,
    Stopwatch,
    build_summary,
    load_with_progress,
    progress_bar,
    report_failures,
    video_progress,
)
from glus_cli.errors import OutputError
from glus_cli.files import write_json_atomic
from glus_cli.ground_truth import Layout
from glus_cli.json_files import read_json_object
from glus_cli.keyframe_files import DETAILS_FILE, SCORE_FILE
from glus_cli.keyframes import MASKS_DIR, ground_truth_scores, has_confidence, run_keyframes
from glus_cli.plural import plural
from glus_cli.protocol import Workload
from glus_cli.run_record import resumable_run


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
    skip_missing: SkipMissingOption = False,
    quiet: QuietOption = False,
    no_report: NoReportOption = False,
) -> None:
    """Run GLUS on every (video, expression), score each frame, and export the key frame of each.

    Writes OUT/keyframes.json ({"<video>_<exp_id>": "<frame name>"}, the official score file, usable with
    --keyframes), OUT/keyframe_scores.json (every frame's score, SAM2's predicted IoU and object score)
    and the masks under OUT/masks/. With --ground-truth also the KFS selector's training labels,
    OUT/kfs_labels/<video>/<exp_id>.json (a list of per-frame IoUs), for every expression whose frames
    were all segmented, and OUT/summary.json. Reruns resume (a finished run says "already complete"
    without loading the model; other options are refused); failed videos, and expressions too long for
    the model, give exit code 8.

    Example:

      glus keyframes mevis/train/JPEGImages -e mevis/train/meta_expressions.json --ground-truth mevis/train
    """
    # 1. options
    options = protocol.segmentation_options()
    spec = checked_spec(model.spec())
    if ground_truth is not None and (protocol.stride > 1 or protocol.max_frames is not None):
        error_console.print(
            "[yellow]warning:[/] KFS training labels need every frame: expressions whose frames "
            "--stride/--max-frames leave out get none",
            highlight=False,
        )
    watch = Stopwatch()
    videos = find_videos(input_dir)  # 2. the input
    # The masks depend on these; the ground truth only ranks them (a rerun may rerank with other truth).
    record = {"command": "keyframes", "model": asdict(model), "protocol": asdict(protocol)}
    truth = None if ground_truth is None else str(ground_truth)
    tasks = plan_tasks(
        videos, load_expressions(expressions), skip_missing=skip_missing
    )  # 3. the expressions and ground truth
    scorer = None
    if ground_truth is not None:
        scorer = ground_truth_scores(ground_truth, layout=layout, meta_path=meta)
        scorer.require(tasks)
    with resumable_run(output_dir, record, adopt_unrecorded=True) as out:  # 4. the output folder
        if pending_count(tasks, out / MASKS_DIR, has_confidence) == 0 and ranked_by(out) == truth:  # 5.
            say_already_complete(out, sum(len(task.expressions) for task in tasks))
            return
        runnable, refused = refuse_long_expressions(resolved_model(spec), tasks, options)  # 6. the model
        glus = None
        if pending_count(runnable, out / MASKS_DIR, has_confidence):
            with watch.time("load_model"):  # 7. the memory check, then the load
                glus = load_with_progress(spec, quiet, Workload.of_run(options))
        with progress_bar(quiet) as progress, watch.time("segment"):
            run = run_keyframes(
                glus,
                runnable,
                out,
                options,
                scorer=scorer,
                stride=protocol.stride,
                max_frames=protocol.max_frames,
                on_video=video_progress(progress),
            )
        report = with_refused(run.report, tasks, refused)
        labels = run.labels
        results = {
            **report.as_dict(),
            "ranking": run.ranking,
            "score_file": str(run.score_path),
            "details_file": str(run.details_path),
            "kfs_labels": None
            if labels is None
            else {"root": str(labels.root), "written": len(labels.written), "unlabelled": labels.unlabelled},
        }
        summary = build_summary(
            "keyframes",
            inputs={
                "input": str(input_dir),
                "expressions_file": str(expressions),
                "ground_truth": truth,
            },
            results=results,
            model=None if glus is None else asdict(glus.info),
            options=options,
            settings=RunSettings(("png",), protocol.stride, protocol.max_frames),
            watch=watch,
        )
        write_json_atomic(out / SUMMARY_NAME, summary)
    if scorer is None:
        console.print(
            "[yellow]no ground truth:[/] key frames ranked by the model's own confidence, "
            "not the paper's IoU pseudo-labels"
        )
    done = plural(len(run.records), "expression")
    console.print(f"[green]wrote[/] {run.score_path} and {run.details_path} ({done})")
    if labels is not None:
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
    report_failures(report)


def ranked_by(out: Path) -> str | bool | None:
    """The ground truth that the finished key-frame files in `out` were ranked with (None: the model's
    confidence), as its `summary.json` records it; False when the files or the summary are missing."""
    if not all((out / name).is_file() for name in (SCORE_FILE, DETAILS_FILE, SUMMARY_NAME)):
        return False
    summary = read_json_object(out / SUMMARY_NAME, what="run summary ", error=OutputError)
    return summary.get("ground_truth", False)
