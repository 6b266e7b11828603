"""The one run preamble of `glus segment`, `glus batch` and `glus keyframes`, local and on Ray.

Before anything heavy, every command checks, in this order, and stops at the first problem with one
`error:` line:

1. the options: ranges and choices (Typer), formats, and the device (locally: on Ray each worker checks
   its own device before its first video, so the driver never imports torch);
2. the input: it exists, and for `segment` decodes one frame (its size feeds the memory check);
3. the expressions, the key-frame file and the ground truth: every video of a batch resolved against
   the input, every name read from them checked (`glus_cli.safe_names`) before anything is written;
4. the output folder: new, or the same run's, recorded in its ``run.json`` (`glus_cli.run_record`): a
   rerun with other options is refused, naming the first difference;
5. the resume rule (`glus_cli.resume`): a run whose expression folders are all complete is
   "already complete", exits 0 and loads no model;
6. the model: the checkpoint and its CLIP tower from the cache or the Hub (only their configs and
   tokenizer in the Ray driver), then every expression's prompt length with the checkpoint's tokenizer:
   `segment` refuses the run, `batch` and `keyframes` fail that expression (same line) and run the others;
7. the memory check with the run's real frame size and `--llm-batch-size` (`Workload.of_run`), then
   the load (`runs.load_with_progress`; on Ray, each worker, before its first video).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from rich.markup import escape

from glus_cli.batch import BatchReport, VideoFailure, VideoTask, expression_folder
from glus_cli.cli.console import console
from glus_cli.errors import InputError
from glus_cli.model_spec import ModelSpec, ResolvedModel
from glus_cli.protocol import SegmentationOptions
from glus_cli.resume import IsDone, is_complete


def checked_spec(spec: ModelSpec, *, on_ray: bool = False) -> ModelSpec:
    """Step 1's device check (locally; on Ray the workers check theirs); returns `spec`.

    Raises:
        InputError, ResourceError: an unknown or unavailable device.
    """
    if not on_ray:
        spec.check_device()
    return spec


def resolved_model(spec: ModelSpec, *, on_ray: bool = False) -> ResolvedModel:
    """Step 6: the checkpoint's and tower's folders (on Ray, only what the driver's checks read).

    Raises:
        CheckpointError, NetworkError, OutputError: see `glus_cli.hub.resolve_model`.
    """
    return spec.resolve(weights=not on_ray)


def check_expressions(resolved: ResolvedModel, texts: Sequence[str], options: SegmentationOptions) -> None:
    """Step 6 for `glus segment`: refuse the run if one expression is too long for the LLM.

    Raises:
        InputError: the first expression too long (see `PromptBudget.check`).
    """
    from glus_cli.model.prompt_length import PromptBudget

    budget = PromptBudget.of_checkpoint(resolved.checkpoint_dir, resolved.vision_tower_dir)
    for text in dict.fromkeys(texts):
        budget.check(text, options)


def refuse_long_expressions(
    resolved: ResolvedModel, tasks: Sequence[VideoTask], options: SegmentationOptions
) -> tuple[list[VideoTask], list[VideoFailure]]:
    """Step 6 for a batch: the tasks without the expressions too long for the LLM, and one failure for
    each of those (`segment`'s line); a video left without expressions is dropped."""
    from glus_cli.model.prompt_length import PromptBudget

    budget = PromptBudget.of_checkpoint(resolved.checkpoint_dir, resolved.vision_tower_dir)
    verdicts: dict[str, str | None] = {}
    kept: list[VideoTask] = []
    refused: list[VideoFailure] = []
    for task in tasks:
        fitting = []
        for expression in task.expressions:
            if expression.text not in verdicts:
                try:
                    budget.check(expression.text, options)
                    verdicts[expression.text] = None
                except InputError as error:
                    verdicts[expression.text] = str(error)
            error = verdicts[expression.text]
            if error is None:
                fitting.append(expression)
            else:
                refused.append(VideoFailure(task.name, error, exp_id=expression.exp_id))
        if fitting:
            kept.append(replace(task, expressions=tuple(fitting)))
    return kept, refused


def with_refused(
    report: BatchReport, tasks: Sequence[VideoTask], refused: Sequence[VideoFailure]
) -> BatchReport:
    """`report` (of the tasks that ran) counting every task of the run and listing the refused
    expressions first among its failures."""
    report.videos = len(tasks)
    report.expressions = sum(len(task.expressions) for task in tasks)
    report.failures[:0] = refused
    return report


def pending_count(tasks: Sequence[VideoTask], root: Path, is_done: IsDone = is_complete) -> int:
    """Expressions of `tasks` whose folder ``root/<video>/<exp_id>`` is not complete (step 5)."""
    return sum(
        not is_done(expression_folder(root, task.name, exp.exp_id))
        for task in tasks
        for exp in task.expressions
    )


def say_already_complete(out: Path, expressions: int) -> None:
    """Step 5's message: the run was finished before; nothing is loaded or redone."""
    noun = "expression" if expressions == 1 else "expressions"
    console.print(
        f"[green]already complete:[/] {escape(str(out))} ({expressions} {noun}); nothing to do",
        highlight=False,
        soft_wrap=True,
    )
