"""`glus check [--smoke]`: what this installation and machine offer, and an offline end-to-end try-out."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from glus_cli import environment
from glus_cli.cli.console import console, error_console
from glus_cli.manifest import load_manifest


def check(
    smoke: Annotated[
        bool,
        typer.Option(
            "--smoke",
            help="Also run `glus segment` end to end, in every format, on a tiny random checkpoint built "
            "in a temporary folder (seconds, no download; its masks are meaningless).",
        ),
    ] = False,
    device: Annotated[
        str, typer.Option(help="The device of the --smoke run: auto, cuda, cuda:N, mps or cpu.")
    ] = "auto",
) -> None:
    """Report the versions, devices, free memory, the precision plans that fit the default model, the
    model cache and whether the Hub answers; with --smoke, prove the install works end to end.

    Examples:

      glus check

      glus check --smoke
    """
    console.print("[bold]versions[/]")
    table = Table(show_header=False, show_edge=False, pad_edge=False, box=None)
    for component in environment.versions():
        table.add_row(component.name, component.version, component.detail)
    console.print(table)

    model = load_manifest().default
    console.print(
        f"\n[bold]devices[/] (plans for {model.repo_id} at 1080p, estimated from its "
        f"{model.size_bytes / 1e9:.1f} GB download)"
    )
    for report in environment.devices(model):
        console.print(
            f"{report.name}: {escape(report.detail)}; native bf16: {'yes' if report.native_bf16 else 'no'}; "
            f"{_gb(report.available)} {report.available_what} of {_gb(report.total)}",
            highlight=False,
        )
        plans = Table(show_edge=False, pad_edge=False, box=None)
        for column in ("  plan", "needs", "fits"):
            plans.add_column(column)
        for plan in report.plans:
            label = plan.flags + ("  (auto)" if plan.auto else "")
            plans.add_row(f"  {label}", _gb(plan.needed), "yes" if plan.fits else "no")
        console.print(plans)

    folder, statuses = environment.cache()
    console.print(f"\n[bold]cache[/] {escape(folder)}", highlight=False)
    for status in statuses:
        state = "complete" if status.complete else "partly" if status.cached else "not cached"
        size = f", {_gb(status.size_bytes)}" if status.cached else ""
        console.print(f"  {status.repo_id} ({status.kind}): {state}{size}", highlight=False)

    console.print(f"\n[bold]hub[/] {escape(environment.hub_reachability())}", highlight=False)

    if smoke:
        from glus_cli.testing.smoke import run_smoke_test  # builds a checkpoint: torch and transformers

        error_console.print("smoke test: glus segment on a tiny random checkpoint ...", highlight=False)
        result = run_smoke_test(device)
        console.print(
            f"\n[bold]smoke test[/] [green]passed[/] in {result.seconds:.1f} s on {result.device}: "
            f"{', '.join(result.files)} (random weights: the masks are meaningless)",
            highlight=False,
        )


def _gb(size: int) -> str:
    return f"{size / 1e9:.1f} GB"
