"""How many LLM positions a GLUS prompt takes, and the refusal of expressions the LLM cannot take.

A prompt holds the expression once per turn of the query window (N_Q turns once the window is full) and
`N_C + N_Q` images, each of which the language model expands into the CLIP tower's pooled patch tokens
(64 for ViT-L/14 at 224 px). LLaMA-7B has `max_position_embeddings = 2048` positions, so the real limit
on an expression is a few hundred tokens. The official code runs past the limit silently; here the
expressions are counted with the checkpoint's tokenizer before any weight is loaded, and refused. Only
the tokenizer (sentencepiece) and two config files are read, without torch, so the Ray driver checks too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from glus_cli.checkpoint_layout import read_config_json
from glus_cli.errors import CheckpointError, InputError
from glus_cli.model.config import IMAGE_TOKEN_POOL, GlusConfig
from glus_cli.model.prompt import build_prompt_ids, normalize_expression
from glus_cli.model.tokenizer import IMAGE_TOKEN_INDEX, GlusTokenizer
from glus_cli.protocol import SegmentationOptions

CLIP_DEFAULT_IMAGE_SIZE = 224
CLIP_DEFAULT_PATCH_SIZE = 32
"""transformers' `CLIPVisionConfig` defaults, for a tower config.json that leaves a field out."""


def image_positions(vision_tower_dir: Path) -> int:
    """LLM positions one image takes: the CLIP tower's patches, pooled by `IMAGE_TOKEN_POOL` (64 for
    ViT-L/14 at 224 px), read from the tower's `config.json` (a vision config, or a full CLIP config's
    ``vision_config``) as plain JSON: no weights, no torch.

    Raises:
        CheckpointError: the tower's config cannot be read.
    """
    data = read_config_json(vision_tower_dir)
    vision = data.get("vision_config", data)
    try:
        image_size = int(vision.get("image_size", CLIP_DEFAULT_IMAGE_SIZE))
        patch_size = int(vision.get("patch_size", CLIP_DEFAULT_PATCH_SIZE))
    except (AttributeError, TypeError, ValueError) as error:
        raise CheckpointError(
            f"cannot read the CLIP vision tower's image and patch size in {vision_tower_dir}: {error}"
        ) from error
    return (image_size // patch_size) ** 2 // IMAGE_TOKEN_POOL


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


@dataclass(frozen=True)
class PromptBudget:
    """What limits an expression's length: the checkpoint's tokenizer, image size and LLM positions.

    Attributes:
        tokenizer: the checkpoint's tokenizer (sentencepiece: no torch).
        positions_per_image: see `image_positions`.
        max_positions: the LLM's context (`max_position_embeddings`).
    """

    tokenizer: GlusTokenizer
    positions_per_image: int
    max_positions: int

    @classmethod
    def of_checkpoint(cls, checkpoint_dir: Path, vision_tower_dir: Path) -> PromptBudget:
        """The budget of a checkpoint folder and its CLIP tower, reading only the tokenizer and the two
        config files (a fraction of a second), never the weights.

        Raises:
            CheckpointError: the checkpoint's config or tokenizer, or the tower's config, cannot be read.
        """
        config = GlusConfig.from_pretrained(checkpoint_dir)
        return cls(
            GlusTokenizer.from_pretrained(checkpoint_dir),
            image_positions(vision_tower_dir),
            config.max_positions,
        )

    def check(self, expression: str, options: SegmentationOptions) -> None:
        """Refuse `expression` if its longest prompt does not fit.

        Raises:
            InputError: one line with the expression's prompt length and the limit (the same line for
                every command).
        """
        length = prompt_positions(self.tokenizer, expression, options, self.positions_per_image)
        if length > self.max_positions:
            shown = expression if len(expression) <= 60 else expression[:57] + "..."
            turns = options.num_query_frames
            raise InputError(
                f'the expression "{shown}" makes prompts of {length:,} tokens, more than the LLM\'s limit '
                f"of {self.max_positions:,} (the expression appears once in each of the {turns} turns of "
                "the query window): shorten it"
            )


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
    budget = PromptBudget(tokenizer, positions_per_image, max_positions)
    for expression in dict.fromkeys(expressions):
        budget.check(expression, options)


def check_expressions_fit(
    checkpoint_dir: Path,
    vision_tower_dir: Path,
    expressions: Sequence[str],
    options: SegmentationOptions,
) -> None:
    """`check_prompt_lengths` with the budget of a checkpoint folder (`PromptBudget.of_checkpoint`).

    Raises:
        InputError: an expression too long for the LLM.
        CheckpointError: the checkpoint's config or tokenizer cannot be read.
    """
    budget = PromptBudget.of_checkpoint(checkpoint_dir, vision_tower_dir)
    for expression in dict.fromkeys(expressions):
        budget.check(expression, options)
