"""`glus batch INPUT --expressions FILE`: a dataset in the submission layout, resumable and shardable."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from glus_cli.batch import (
    BatchReport,
    find_videos,
    load_expressions,
    missing_videos,
    parse_shard,
    plan_tasks,
    select_shard,
)
from glus_cli.cli.console import console
from glus_cli.cli.options import (
    ExpressionsOption,
    FormatOption,
    FpsOption,
    InputArgument,
    ModelArgs,
    ProtocolArgs,
    QuietOption,
    ResumableOutputDirOption,
    SkipMissingOption,
    default_formats,
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
from glus_cli.cli.ray_batch import run_on_ray_with_progress
from glus_cli.cli.report import NoReportOption, write_run_report
from glus_cli.cli.runs import (
    SUMMARY_NAME,
    RunSettings,
    Stopwatch,
    build_summary,
    load_with_progress,
    report_failures,
    run_with_progress,
)
from glus_cli.distributed.cluster import import_ray
from glus_cli.distributed.worker import WorkerSpec
from glus_cli.errors import InputError
from glus_cli.files import write_json_atomic
from glus_cli.keyframe_files import keyframe_lookup
from glus_cli.outputs import validate_formats
from glus_cli.plural import plural
from glus_cli.protocol import Workload
from glus_cli.run_record import resumable_run
from glus_cli.video import DEFAULT_FPS


@option_groups
def batch(
    input_dir: InputArgument,
    expressions: ExpressionsOption,
    *,
    model: ModelArgs,
    output_dir: ResumableOutputDirOption = None,
    formats: FormatOption = None,
    protocol: ProtocolArgs,
    keyframes: Annotated[
        Path | None,
        typer.Option(
            help='Key-frame score file {"<video>_<exp_id>": frame}: forward pass from each key frame, '
            "then backward to frame 0 (as GLUS-S).",
            rich_help_panel="GLUS protocol",
        ),
    ] = None,
    shard: Annotated[
        str | None,
        typer.Option(
            help="i/n: this process does every n-th video (name order) from the i-th; shards are disjoint.",
            rich_help_panel="Output",
        ),
    ] = None,
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray",
            metavar="ADDRESS",
            help="Spread the videos over Ray workers: local (a cluster on this machine for this run), auto "
            "(the cluster `ray start` made) or a cluster address. Needs glus-cli\\[ray].",
            rich_help_panel="Distributed",
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Ray workers, each with its own model (default: one per GPU, or one per machine on CPUs).",
            rich_help_panel="Distributed",
        ),
    ] = None,
    skip_missing: SkipMissingOption = False,
    fps: FpsOption = DEFAULT_FPS,
    quiet: QuietOption = False,
    no_report: NoReportOption = False,
) -> None:
    """Segment every expression of every video in INPUT_DIR into OUT/<video>/<exp_id>/<frame>.png.

    A rerun with the same --output-dir skips finished expressions and redoes unfinished ones (a finished
    run says "already complete" without loading the model); a rerun with other options is refused. A
    video that fails, or an expression too long for the model, is listed in OUT/summary.json and on
    stderr, and the exit code is 8; the others are done.

    Examples:

      glus batch mevis/valid_u/JPEGImages -e mevis/valid_u/meta_expressions.json -o preds/

      glus batch videos/ -e expressions.csv --shard 0/2 -o preds/   (and --shard 1/2 elsewhere)

      glus batch videos/ -e expressions.csv -o /shared/preds --ray auto   (on a Ray cluster)
    """
    # 1. options
    if workers is not None and ray_address is None:
        raise InputError("--workers needs --ray")
    on_ray = ray_address is not None
    if on_ray:
        import_ray()
    shard_index, shard_count = parse_shard(shard) if shard is not None else (0, 1)
    formats_used = list(validate_formats(default_formats(formats)))
    options = protocol.segmentation_options()
    stride, max_frames = protocol.stride, protocol.max_frames
    spec = checked_spec(model.spec(), on_ray=on_ray)
    watch = Stopwatch()
    videos = find_videos(input_dir)  # 2. the input
    record = {
        "command": "batch",
        "model": asdict(model),
        "protocol": asdict(protocol),
        "formats": formats_used,
        "keyframes": None if keyframes is None else str(keyframes.absolute()),
        "fps": fps,
    }
    summary_name = SUMMARY_NAME if shard_count == 1 else f"summary.shard-{shard_index}-of-{shard_count}.json"
    # 3. the expressions, every video resolved, and the key-frame file (read before anything is written)
    listed = load_expressions(expressions)
    tasks = select_shard(plan_tasks(videos, listed, skip_missing=skip_missing), shard_index, shard_count)
    lookup = keyframe_lookup(keyframes)
    with resumable_run(output_dir, record, adopt_unrecorded=True) as out:  # 4. the output folder
        model_info: dict[str, Any] | None = None
        results: dict[str, Any] = {}
        complete = pending_count(tasks, out) == 0  # 5. the resume rule
        if complete and (out / summary_name).is_file():
            say_already_complete(out, sum(len(task.expressions) for task in tasks))
            return
        if complete:  # finished, but stopped before its summary
            report = BatchReport.all_skipped(tasks)
        else:
            # 6. the model's files, and the expressions its LLM cannot take (failed, the others run)
            runnable, refused = refuse_long_expressions(resolved_model(spec, on_ray=on_ray), tasks, options)
            if ray_address is not None:  # 7. on each worker, before its first video
                ray_spec = WorkerSpec(
                    spec, options, tuple(formats_used), stride, max_frames, keyframes, out, fps
                )
                ray_run = run_on_ray_with_progress(
                    runnable,
                    ray_spec,
                    address=ray_address,
                    workers=workers,
                    shard=(shard_index, shard_count),
                    quiet=quiet,
                )
                report, model_info, results["ray"] = ray_run.report, ray_run.model, ray_run.ray
                watch.seconds.update(ray_run.seconds)
            elif pending_count(runnable, out) == 0:
                report = BatchReport.all_skipped(runnable)
            else:
                with watch.time("load_model"):  # 7. the memory check, then the load
                    glus = load_with_progress(spec, quiet, Workload.of_run(options))
                with watch.time("segment"):
                    report = run_with_progress(
                        glus,
                        runnable,
                        out,
                        formats_used,
                        options,
                        stride=stride,
                        max_frames=max_frames,
                        folder_fps=fps,
                        keyframes=lookup,
                        quiet=quiet,
                    )
                model_info = asdict(glus.info)
            report = with_refused(report, tasks, refused)
        summary = build_summary(
            "batch",
            inputs={
                "input": str(input_dir),
                "expressions_file": str(expressions),
                "shard": f"{shard_index}/{shard_count}",
            },
            results={**report.as_dict(), "missing_videos": missing_videos(videos, listed), **results},
            model=model_info,
            options=options,
            settings=RunSettings(
                tuple(formats_used),
                stride,
                max_frames,
                keyframes_file=None if keyframes is None else str(keyframes),
            ),
            watch=watch,
        )
        write_json_atomic(out / summary_name, summary)
    if complete:
        say_already_complete(out, report.expressions)
        write_run_report(out, not no_report)
        return
    if not quiet:
        table = Table(title=f"glus batch: {plural(len(tasks), 'video')}")
        for column in ("expressions", "done now", "already complete", "failed"):
            table.add_column(column)
        table.add_row(
            str(report.expressions),
            str(len(report.outcomes)),
            str(len(report.skipped)),
            str(len(report.failures)),
        )
        console.print(table)
    console.print(f"[green]wrote[/] {out}")
    write_run_report(out, not no_report)
    report_failures(report)
