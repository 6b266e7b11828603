"""`glus batch --ray`'s command-line edge: one Rich progress bar over the workers' reports.

The batch command parses its options and hands over here; the work is `glus_cli.distributed`'s.
"""

from __future__ import annotations

import logging
from contextlib import ExitStack
from typing import TYPE_CHECKING

from glus_cli.cli.runs import progress_bar
from glus_cli.distributed.driver import RayRun, run_on_ray
from glus_cli.distributed.worker import WorkerSpec
from glus_cli.plural import plural

if TYPE_CHECKING:
    from glus_cli.batch import VideoTask


def run_on_ray_with_progress(
    tasks: list[VideoTask],
    spec: WorkerSpec,
    *,
    address: str,
    workers: int | None,
    shard: tuple[int, int],
    quiet: bool,
) -> RayRun:
    """`run_on_ray` with one Rich progress bar over every pending video, fed by the workers.

    The bar appears once the workers report (an error before that is one line, with no bar above it).
    """
    progress = progress_bar(quiet)
    shown = ExitStack()  # the display starts with the first report and ends with the run
    bars: list[int] = []

    def show(done: int, total: int) -> None:
        if not bars:
            shown.enter_context(progress)
            label = f"{plural(len(tasks), 'video')} on Ray"
            bars.append(progress.add_task(label, total=total, unit="videos"))
        progress.update(bars[0], completed=done, total=total)

    with shown:
        return run_on_ray(
            tasks,
            spec,
            address=address,
            workers=workers,
            shard=shard,
            on_progress=show,
            verbose=logging.getLogger().isEnabledFor(logging.INFO),
        )
