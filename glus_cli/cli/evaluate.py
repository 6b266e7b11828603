"""`glus eval PREDICTIONS GROUND_TRUTH`: J, F and J&F as the MeViS / DAVIS scripts compute them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from glus_cli.cli.console import console, error_console
from glus_cli.cli.report import NoReportOption, write_run_report
from glus_cli.cli.runs import progress_bar
from glus_cli.evaluation import EvaluationResult, evaluate
from glus_cli.ground_truth import Layout
from glus_cli.metrics import DEFAULT_BOUND_TH
from glus_cli.report import GroundTruth

CSV_NAME = "eval.csv"
JSON_NAME = "eval.json"


def render_table(result: EvaluationResult, *, per_expression: bool = True) -> Table:
    """A Rich table of the scores in percent: one row per expression (unless turned off), then overall."""
    table = Table(title=f"J&F ({result.layout.value} layout)", caption="scores in %")
    for name in ("Video", "Exp", "Expression", "Frames"):
        table.add_column(name)
    for name in ("J", "F", "J&F"):
        table.add_column(name, justify="right")
    if per_expression:
        for index, score in enumerate(result.per_expression):
            table.add_row(
                Text(score.video),  # Text: names and sentences are shown as they are, never as markup
                Text(score.exp_id),
                Text(score.expression),
                str(score.n_frames),
                *_percent(score.j, score.f, score.jf),
                end_section=index == len(result.per_expression) - 1,
            )
    overall = result.overall
    table.add_row(
        "overall",
        "",
        f"{overall.n_expressions} expressions",
        "",
        *_percent(overall.j, overall.f, overall.jf),
        style="bold",
    )
    return table


def evaluate_command(
    predictions: Annotated[
        Path, typer.Argument(help="Predictions in the submission layout <video>/<exp_id>/<frame>.png.")
    ],
    ground_truth: Annotated[
        Path,
        typer.Argument(
            help="Dataset split with mask_dict.json (MeViS), Annotations/ (Ref-YouTube-VOS, DAVIS), "
            "or a <video>/<exp_id>/<frame>.png mask tree."
        ),
    ],
    layout: Annotated[
        Layout | None, typer.Option(help="Ground-truth layout (default: detected from the folder).")
    ] = None,
    meta: Annotated[
        Path | None,
        typer.Option(help="meta_expressions.json (default: in GROUND_TRUTH, or Ref-YouTube-VOS's place)."),
    ] = None,
    output_dir: Annotated[
        Path | None,
        typer.Option(
            "--output-dir", "-o", help=f"Where {CSV_NAME} and {JSON_NAME} go (default: PREDICTIONS)."
        ),
    ] = None,
    bound_th: Annotated[
        float,
        typer.Option(min=0.0, help="Boundary tolerance of F (fraction of the diagonal, or pixels if ≥ 1)."),
    ] = DEFAULT_BOUND_TH,
    workers: Annotated[int, typer.Option(min=1, help="Processes scoring expressions in parallel.")] = 1,
    per_expression: Annotated[
        bool, typer.Option(help="Show one table row per expression (files always have them).")
    ] = True,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or table.")] = False,
    no_report: NoReportOption = False,
) -> None:
    """Score PREDICTIONS against GROUND_TRUTH: J (region IoU), F (boundary), J&F per expression and overall.

    Empty masks follow the MeViS code: an empty prediction of an empty ground truth scores J = F = 1. A
    video with no prediction folder scores 0; a missing frame PNG counts as an empty mask (warned).
    PREDICTIONS/report.html then shows the scores, worst first, with each expression's worst frames.

    Example:

      glus eval preds/ mevis/valid_u
    """
    with progress_bar(quiet) as progress:
        bar = progress.add_task("scoring expressions", total=None)
        result = evaluate(
            predictions,
            ground_truth,
            layout=layout,
            meta_path=meta,
            bound_th=bound_th,
            workers=workers,
            progress=lambda done, total: progress.update(bar, completed=done, total=total),
        )
    out = output_dir if output_dir is not None else predictions
    result.write_csv(out / CSV_NAME)
    result.write_json(out / JSON_NAME)
    for warning in result.warnings:
        error_console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    if not quiet:
        console.print(render_table(result, per_expression=per_expression))
    overall = result.overall
    console.print(
        f"J&F {100 * overall.jf:.2f}  J {100 * overall.j:.2f}  F {100 * overall.f:.2f}  "
        f"({overall.n_expressions} expressions); wrote {out / CSV_NAME} and {out / JSON_NAME}",
        highlight=False,
    )
    write_run_report(
        predictions, not no_report, result=result, ground_truth=GroundTruth(ground_truth, layout, meta)
    )


def _percent(*values: float) -> list[str]:
    return [f"{100 * value:.1f}" for value in values]
