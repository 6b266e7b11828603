"""`glus eval PREDICTIONS GROUND_TRUTH`: J, F and J&F as the MeViS / DAVIS scripts compute them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from glus_cli.cli.console import console, error_console
from glus_cli.cli.runs import progress_bar
from glus_cli.evaluation import Layout, evaluate
from glus_cli.metrics import DEFAULT_BOUND_TH

CSV_NAME = "eval.csv"
JSON_NAME = "eval.json"


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
) -> None:
    """Score PREDICTIONS against GROUND_TRUTH: J (region IoU), F (boundary), J&F per expression and overall.

    Empty masks follow the MeViS code: an empty prediction of an empty ground truth scores J = F = 1. A
    video with no prediction folder scores 0; a missing frame PNG counts as an empty mask (warned).

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
    out.mkdir(parents=True, exist_ok=True)
    result.write_csv(out / CSV_NAME)
    result.write_json(out / JSON_NAME)
    for warning in result.warnings:
        error_console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    if not quiet:
        console.print(result.render_table(per_expression=per_expression))
    overall = result.overall
    console.print(
        f"J&F {100 * overall.jf:.2f}  J {100 * overall.j:.2f}  F {100 * overall.f:.2f}  "
        f"({overall.n_expressions} expressions); wrote {out / CSV_NAME} and {out / JSON_NAME}",
        highlight=False,
    )
