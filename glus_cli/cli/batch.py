"""`glus batch INPUT --expressions FILE`: a dataset in the submission layout, resumable and shardable."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from glus_cli.batch import (
    find_videos,
    load_expressions,
    parse_shard,
    plan_tasks,
    select_shard,
)
from glus_cli.cli.console import console
from glus_cli.cli.options import (
    ExpressionsOption,
    FormatOption,
    InputArgument,
    ModelArgs,
    ProtocolArgs,
    QuietOption,
    ResumableOutputDirOption,
    default_formats,
    option_groups,
)
from glus_cli.cli.ray_batch import run_on_ray_with_progress, worker_spec
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
from glus_cli.errors import InputError
from glus_cli.keyframes import keyframe_lookup
from glus_cli.outputs import prepare_output_dir, validate_formats, write_json_atomic


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
    quiet: QuietOption = False,
    no_report: NoReportOption = False,
) -> None:
    """Segment every expression of every video in INPUT_DIR into OUT/<video>/<exp_id>/<frame>.png.

    A rerun with the same --output-dir skips finished expressions and redoes unfinished ones. A video
    that fails is listed in OUT/summary.json and on stderr, and the exit code is 8; the others are done.

    Examples:

      glus batch mevis/valid_u/JPEGImages -e mevis/valid_u/meta_expressions.json -o preds/

      glus batch videos/ -e expressions.csv --shard 0/2 -o preds/   (and --shard 1/2 elsewhere)

      glus batch videos/ -e expressions.csv -o /shared/preds --ray auto   (on a Ray cluster)
    """
    if workers is not None and ray_address is None:
        raise InputError("--workers needs --ray")
    watch = Stopwatch()
    shard_index, shard_count = parse_shard(shard) if shard is not None else (0, 1)
    formats_used = list(validate_formats(default_formats(formats)))
    options = protocol.segmentation_options()
    stride, max_frames = protocol.stride, protocol.max_frames
    lookup = keyframe_lookup(keyframes)
    tasks = plan_tasks(find_videos(input_dir), load_expressions(expressions))
    tasks = select_shard(tasks, shard_index, shard_count)
    if ray_address is None:  # on Ray, each worker checks as it loads: the driver never imports torch
        model.check([exp.text for task in tasks for exp in task.expressions], options)
    out = prepare_output_dir(output_dir, resume=True)
    results: dict[str, Any] = {}
    if ray_address is not None:
        spec = worker_spec(model, options, formats_used, stride, max_frames, keyframes, out)
        ray_run = run_on_ray_with_progress(
            tasks, spec, address=ray_address, workers=workers, shard=(shard_index, shard_count), quiet=quiet
        )
        report, model_info, results["ray"] = ray_run.report, ray_run.model, ray_run.ray
        watch.seconds.update(ray_run.seconds)
    else:
        with watch.time("load_model"):
            glus = load_with_progress(model, quiet)
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
        model_info = asdict(glus.info)
    summary_name = SUMMARY_NAME if shard_count == 1 else f"summary.shard-{shard_index}-of-{shard_count}.json"
    summary = build_summary(
        "batch",
        inputs={
            "input": str(input_dir),
            "expressions_file": str(expressions),
            "shard": f"{shard_index}/{shard_count}",
        },
        results={**report.as_dict(), **results},
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
    write_run_report(out, not no_report)
    report_failures(report)
