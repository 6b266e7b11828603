"""`glus report FOLDER`: (re)build a run folder's `report.html`; and the hook every run command calls."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from glus_cli.cli.console import console, error_console
from glus_cli.cli.runs import progress_bar
from glus_cli.errors import GlusError, one_line
from glus_cli.ground_truth import Layout
from glus_cli.report import GroundTruth, write_report

NoReportOption = Annotated[
    bool,
    typer.Option(
        "--no-report",
        help="Do not write report.html (rebuild it any time with glus report).",
        rich_help_panel="Output",
    ),
]


def write_run_report(out: Path, enabled: bool, **kwargs: object) -> None:
    """The end of a run command: write `out`'s report.html unless `--no-report`.

    The masks and records are written by then, so a report that cannot be written is a warning, not a
    failed run. `kwargs` go to `glus_cli.report.write_report`.
    """
    if not enabled:
        return
    try:
        write_report(out, **kwargs)  # type: ignore[arg-type]
    except GlusError as error:
        error_console.print(
            f"[yellow]warning:[/] report.html not written: {escape(one_line(error))}", highlight=False
        )


def report(
    folder: Annotated[Path, typer.Argument(help="A run folder of glus segment, batch, keyframes or eval.")],
    ground_truth: Annotated[
        Path | None,
        typer.Option(
            help="Dataset split to score against, as glus eval takes it: adds J, F, J&F and the worst "
            "frames (default: the scores of FOLDER/eval.json, if any)."
        ),
    ] = None,
    layout: Annotated[Layout | None, typer.Option(help="Ground-truth layout (default: detected).")] = None,
    meta: Annotated[
        Path | None, typer.Option(help="The ground truth's meta_expressions.json (default: as glus eval).")
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="Processes scoring expressions in parallel.")] = 1,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Write FOLDER/report.html: one static page to look at a run (no server, no network needed).

    Per expression: the overlay video, the contact sheet, SAM2's predicted IoU and object score over the
    frames and the frames without [SEG]; for a dataset, a sortable table; with scores, J&F worst first,
    its histogram and the worst frames. A run that is not finished gets a report marked partial.

    Examples:

      glus report runs/0001

      glus report preds/ --ground-truth mevis/valid_u
    """
    truth = None if ground_truth is None else GroundTruth(ground_truth, layout, meta)
    with progress_bar(quiet or truth is None) as progress:
        bar = progress.add_task("scoring expressions", total=None)
        path = write_report(
            folder,
            ground_truth=truth,
            workers=workers,
            progress=lambda done, total: progress.update(bar, completed=done, total=total),
        )
    console.print(f"[green]wrote[/] {escape(str(path))}", highlight=False)
