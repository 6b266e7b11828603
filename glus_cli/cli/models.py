"""`glus download` and `glus models`: the local checkpoint cache."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from glus_cli import hub
from glus_cli.cli.console import console
from glus_cli.manifest import ModelEntry, default_model


def _size(num_bytes: int) -> str:
    value = float(num_bytes)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def download(
    model: Annotated[
        str, typer.Argument(help="Hub id (e.g. Swindl/GLUS-A) or a local checkpoint folder.")
    ] = default_model(),
    revision: Annotated[str | None, typer.Option(help="Branch, tag or commit on the Hub.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Fetch a GLUS checkpoint and the CLIP vision tower it names into the local cache.

    The cache is weights/ in a source checkout (or HF_HOME's cache when set; see `glus models`).
    Afterwards the model works offline (HF_HUB_OFFLINE=1).

    Example: glus download Swindl/GLUS-S
    """
    result = hub.download(model, revision, progress=not quiet)
    console.print(f"[green]ready:[/] {result.model} -> {result.model_path}")
    console.print(f"       vision tower {result.vision_tower} -> {result.vision_tower_path}")
    console.print(f"       {_size(result.size_bytes)} on disk in {hub.weights_dir()}")


def models() -> None:
    """List the known GLUS checkpoints, their download sizes and reported accuracy, and what is cached."""
    statuses = hub.list_models()
    # Ids are what users copy into --model: never cut, even at 80 columns (no outer border, so the table
    # fits). The cache paths, long, follow the table.
    table = Table(title=f"GLUS checkpoints (cache: {hub.weights_dir()})", show_edge=False, pad_edge=False)
    longest_id = max((len(status.repo_id) for status in statuses), default=5)
    table.add_column("model", min_width=longest_id, no_wrap=True)
    for column in ("kind", "size", "J&F MeViS", "J&F Ref-YTVOS", "cached"):
        table.add_column(column)
    for status in statuses:
        entry = status.entry
        is_checkpoint = isinstance(entry, ModelEntry)
        name = status.repo_id + (" (default)" if is_checkpoint and entry.default else "")
        size = _size(status.size_bytes) if status.cached else f"~{_size(entry.size_bytes)}" if entry else "?"
        cached = "yes" if status.complete else "partly" if status.cached else "no"
        table.add_row(
            name,
            status.kind,
            size,
            f"{entry.jf_mevis:.1f}" if is_checkpoint else "",
            f"{entry.jf_refytvos:.1f}" if is_checkpoint else "",
            cached,
        )
    console.print(table)
    for status in statuses:
        if status.path is not None:
            console.print(f"{status.repo_id}: {status.path}", highlight=False, soft_wrap=True)
