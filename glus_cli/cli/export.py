"""`glus export RUN -o OUT --to FORMAT`: a run's masks as COCO, YouTube-VIS, YOLO or MOTS, without a model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from glus_cli.cli.console import console
from glus_cli.cli.runs import progress_bar
from glus_cli.export import FORMATS, ExportOptions, export_run
from glus_cli.export.instances import Filters
from glus_cli.export.run import check_format

_FILTER = "Confidence filter"
_LAYOUT = "Categories and layout"


def export_command(
    run: Annotated[Path, typer.Argument(help="A glus segment, glus batch or glus keyframes output folder.")],
    to: Annotated[str, typer.Option("--to", "-t", help=f"Format: {', '.join(FORMATS)}.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The new folder to write.")],
    min_iou: Annotated[
        float | None,
        typer.Option(help="Drop frames whose SAM2 predicted IoU is below this.", rich_help_panel=_FILTER),
    ] = None,
    min_object_score: Annotated[
        float | None,
        typer.Option(
            help="Drop frames whose SAM2 object-score logit is below this.", rich_help_panel=_FILTER
        ),
    ] = None,
    require_seg: Annotated[
        bool,
        typer.Option(
            help="Drop frames where the model gave no [SEG] (their masks are blank).", rich_help_panel=_FILTER
        ),
    ] = True,
    category: Annotated[
        str | None,
        typer.Option(
            help="One category for every expression (default: one per distinct expression).",
            rich_help_panel=_LAYOUT,
        ),
    ] = None,
    categories: Annotated[
        Path | None,
        typer.Option(
            help='JSON file mapping "<video>/<exp_id>" (or "<exp_id>") to category names.',
            rich_help_panel=_LAYOUT,
        ),
    ] = None,
    polygons: Annotated[
        bool, typer.Option(help="coco: polygons instead of RLE masks.", rich_help_panel=_LAYOUT)
    ] = False,
    results: Annotated[
        bool, typer.Option(help="ytvis: the results flavour (with scores).", rich_help_panel=_LAYOUT)
    ] = False,
    copy: Annotated[
        bool,
        typer.Option(help="Copy the frames into OUTPUT instead of linking them.", rich_help_panel=_LAYOUT),
    ] = False,
    frames: Annotated[
        Path | None,
        typer.Option(
            help="Where the frames are, if not where the run read them: the source for a segment run, the "
            "folder of videos for batch and keyframes runs (which do not record it)."
        ),
    ] = None,
    strict: Annotated[
        bool, typer.Option(help="Refuse a run with unfinished expressions instead of skipping them.")
    ] = False,
    force: Annotated[bool, typer.Option(help="Replace OUTPUT if it exists.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Write a run's masks in a format to train or annotate with, keeping only confident frames.

    Reads what glus segment, glus batch and glus keyframes wrote (no model is loaded). OUTPUT is written
    to a temporary folder beside it and renamed when complete; export.json in it counts what was kept.

    Examples:

      glus export runs/0001 --to coco -o coco/            # then CVAT: Import dataset, COCO 1.0
      glus export preds/ --to yolo -o yolo/ --min-iou 0.8 # then: yolo train data=yolo/data.yaml
    """
    options = ExportOptions(
        format=check_format(to),
        filters=Filters(min_iou, min_object_score, require_seg),
        category=category,
        categories_file=categories,
        polygons=polygons,
        results=results,
        copy=copy,
        strict=strict,
        frames_root=frames,
        force=force,
    )
    with progress_bar(quiet) as progress:
        bar = progress.add_task("exporting videos", total=None, unit="videos")
        report = export_run(
            run,
            output,
            options,
            progress=lambda done, total: progress.update(bar, completed=done, total=total),
        )
    counts = report.counts
    dropped = counts.dropped_no_seg + counts.dropped_low_iou + counts.dropped_low_object_score
    console.print(
        f"wrote {output} ({options.format}): {counts.instances} masks of {counts.expressions} expressions in "
        f"{counts.videos} videos; {dropped} frames dropped by the filter, {counts.empty_masks} empty masks; "
        f"see {output / 'export.json'}",
        highlight=False,
        soft_wrap=True,
    )
