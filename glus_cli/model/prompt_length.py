"""How many LLM positions a GLUS prompt takes, and the refusal of expressions the LLM cannot take.

A prompt holds the expression once per turn of the query window (N_Q turns once the window is full) and
`N_C + N_Q` images, each of which the language model expands into the CLIP tower's pooled patch tokens
(64 for ViT-L/14 at 224 px). LLaMA-7B has `max_position_embeddings = 2048` positions, so the real limit
on an expression is a few hundred tokens. The official code runs past the limit silently; here the
expressions are counted with the checkpoint's tokenizer before any weight is loaded, and refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from transformers import CLIPVisionConfig

from glus_cli.errors import CheckpointError, InputError
from glus_cli.model.config import IMAGE_TOKEN_POOL, GlusConfig
from glus_cli.model.prompt import build_prompt_ids, normalize_expression
from glus_cli.model.tokenizer import IMAGE_TOKEN_INDEX, GlusTokenizer
from glus_cli.protocol import SegmentationOptions


def image_positions(vision_tower_dir: Path) -> int:
    """LLM positions one image takes: the CLIP tower's patches, pooled by `IMAGE_TOKEN_POOL` (64 for
    ViT-L/14 at 224 px), read from the tower's `config.json` without loading its weights.

    Raises:
        CheckpointError: the tower's config cannot be read.
    """
    try:
        config = CLIPVisionConfig.from_pretrained(str(vision_tower_dir))
    except (OSError, ValueError) as error:
        raise CheckpointError(
            f"cannot read the CLIP vision tower's config in {vision_tower_dir}: {error}"
        ) from error
    return (config.image_size // config.patch_size) ** 2 // IMAGE_TOKEN_POOL


def prompt_positions(
    tokenizer: GlusTokenizer, expression: str, options: SegmentationOptions, positions_per_image: int
) -> int:
    """LLM positions of the longest prompt of `expression`: the one with a full query window.

    Args:
        tokenizer: the checkpoint's tokenizer.
        expression: the expression as given (normalised here as the pipeline does).
        options: N_C and N_Q.
        positions_per_image: see `image_positions`.
    """
    ids = build_prompt_ids(
        tokenizer,
        normalize_expression(expression),
        options.num_query_frames - 1,
        options.num_context_frames,
        options.num_query_frames,
    )
    num_images = sum(1 for token in ids if token == IMAGE_TOKEN_INDEX)
    return len(ids) + num_images * (positions_per_image - 1)


def check_prompt_lengths(
    tokenizer: GlusTokenizer,
    expressions: Sequence[str],
    options: SegmentationOptions,
    *,
    positions_per_image: int,
    max_positions: int,
) -> None:
    """Refuse the first expression whose longest prompt does not fit in `max_positions`.

    Raises:
        InputError: one line with the expression's prompt length and the limit.
    """
    for expression in dict.fromkeys(expressions):
        length = prompt_positions(tokenizer, expression, options, positions_per_image)
        if length > max_positions:
            shown = expression if len(expression) <= 60 else expression[:57] + "..."
            turns = options.num_query_frames
            raise InputError(
                f'the expression "{shown}" makes prompts of {length:,} tokens, more than the LLM\'s limit '
                f"of {max_positions:,} (the expression appears once in each of the {turns} turns of the "
                "query window): shorten it"
            )


def check_expressions_fit(
    checkpoint_dir: Path,
    vision_tower_dir: Path,
    expressions: Sequence[str],
    options: SegmentationOptions,
) -> None:
    """`check_prompt_lengths` with the tokenizer, context size and image size of a checkpoint folder.

    Only the tokenizer and the two config files are read (a fraction of a second), never the weights.

    Raises:
        InputError: an expression too long for the LLM.
        CheckpointError: the checkpoint's config or tokenizer cannot be read.
    """
    config = GlusConfig.from_pretrained(checkpoint_dir)
    check_prompt_lengths(
        GlusTokenizer.from_pretrained(checkpoint_dir),
        expressions,
        options,
        positions_per_image=image_positions(vision_tower_dir),
        max_positions=config.max_positions,
    )
