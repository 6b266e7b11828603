"""A tiny LLaMA-style tokenizer, trained in milliseconds, laid out like a GLUS checkpoint's tokenizer files.

Tests and tiny-checkpoint fixtures use it instead of the real 32000-piece LLaMA vocabulary, which a
clone of glus-cli does not ship. It is a sentencepiece BPE model with the LLaMA settings that decide how
prompts tokenize (byte fallback, dummy prefix, no white-space folding, split digits, ``<unk>``=0,
``<s>``=1, ``</s>``=2, no pad piece), trained on the prompt's words and typical referring expressions,
then ``<im_patch>``, ``<im_start>``, ``<im_end>``, ``[SEG]`` appended after the pieces as in the
released checkpoints. Training uses one thread and no sampling, so a given ``seed`` always writes a
byte-identical ``tokenizer.model``.
"""

from __future__ import annotations

import io
import json
import random
from pathlib import Path
from typing import Any

import sentencepiece as spm

from glus_cli.model.prompt import (
    ANSWER_PREFIX,
    ASSISTANT_ROLE,
    CONTEXT_INSTRUCTION,
    QUESTION_TEMPLATE,
    SEG_ANSWER,
    SYSTEM_MESSAGE,
    USER_ROLE,
)
from glus_cli.model.tokenizer import (
    ADDED_TOKENS_FILE,
    IM_END_TOKEN,
    IM_PATCH_TOKEN,
    IM_START_TOKEN,
    SEG_TOKEN,
    SPECIAL_TOKENS_MAP_FILE,
    TOKENIZER_CONFIG_FILE,
    TOKENIZER_MODEL_FILE,
)

TINY_NUM_PIECES = 400
"""Sentencepiece pieces of the tiny model (3 special + 256 byte pieces + characters and merges)."""
TINY_ADDED_TOKENS = (IM_PATCH_TOKEN, IM_START_TOKEN, IM_END_TOKEN, SEG_TOKEN)
"""Appended after the pieces in this order, as in the released GLUS checkpoints."""
TINY_VOCAB_SIZE = TINY_NUM_PIECES + len(TINY_ADDED_TOKENS)
"""Pieces plus added tokens: the embedding rows a tiny checkpoint needs."""

_EXPRESSIONS = (
    "The panda that has stayed in place with little movement",
    "the dog running to the left",
    "a red car moving forward",
    "the cat jumping over the fence",
    "two people walking side by side",
    "The man in a black shirt.",
    "the bird flying away from the tree",
    "a white horse eating grass",
    "the second elephant from the right",
    "the girl holding an umbrella",
    "the boat that turns around",
    "the monkey sitting still, then climbing up",
    "3 sheep standing near the gate",
    "the largest fish swimming in circles",
    "a person riding a bike down the road",
    "the tiger lying down without moving",
    "the parrot on the top branch",
    "the bear walking behind the rock",
    "the café waiter with a tray",
)
_PUNCTUATION_AND_DIGITS = "0 1 2 3 4 5 6 7 8 9 10 25 100 . , ! ? : ; ' \" ( ) - / &"


def build_tiny_tokenizer(folder: Path, seed: int = 0) -> int:
    """Write a tiny GLUS tokenizer into ``folder`` (created if needed) and return its vocabulary size.

    Writes ``tokenizer.model``, ``added_tokens.json``, ``special_tokens_map.json`` and
    ``tokenizer_config.json`` with the structure transformers 4.31 saved for the GLUS checkpoints.

    Args:
        folder: where to write the files (existing files of the same names are replaced).
        seed: varies the extra training sentences, so different seeds give different vocabularies (and
            tests can check that nothing depends on one vocabulary); the same seed always gives
            byte-identical files.

    Returns:
        The number of embedding rows a checkpoint with this tokenizer needs: :data:`TINY_VOCAB_SIZE`.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(_training_sentences(seed)),
        model_writer=model,
        model_type="bpe",
        vocab_size=TINY_NUM_PIECES,
        character_coverage=1.0,
        byte_fallback=True,
        split_digits=True,
        allow_whitespace_only_pieces=True,
        normalization_rule_name="identity",
        add_dummy_prefix=True,
        remove_extra_whitespaces=False,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        num_threads=1,
        shuffle_input_sentence=False,
        minloglevel=2,
    )
    (folder / TOKENIZER_MODEL_FILE).write_bytes(model.getvalue())
    added_tokens = {token: TINY_NUM_PIECES + index for index, token in enumerate(TINY_ADDED_TOKENS)}
    _write_json(folder / ADDED_TOKENS_FILE, added_tokens)
    _write_json(folder / SPECIAL_TOKENS_MAP_FILE, _special_tokens_map())
    _write_json(folder / TOKENIZER_CONFIG_FILE, _tokenizer_config())
    return TINY_VOCAB_SIZE


def _training_sentences(seed: int) -> list[str]:
    """The prompt texts, the expressions in prompt form, and seed-dependent sentences of their words."""
    expressions = [expression.removesuffix(".").lower() for expression in _EXPRESSIONS] + list(_EXPRESSIONS)
    sentences = [
        SYSTEM_MESSAGE,
        f"{USER_ROLE}: {CONTEXT_INSTRUCTION}",
        f"{ASSISTANT_ROLE}: {SEG_ANSWER}",
        ANSWER_PREFIX,
        _PUNCTUATION_AND_DIGITS,
    ]
    sentences += [QUESTION_TEMPLATE.format(expression=expression) for expression in expressions]
    words = sorted({word for sentence in sentences for word in sentence.split()})
    rng = random.Random(seed)
    sentences += [" ".join(rng.choices(words, k=rng.randint(3, 12))) for _ in range(200)]
    return sentences


def _added_token_dict(content: str) -> dict[str, Any]:
    """A special token as transformers 4.31 serializes an ``AddedToken``."""
    return {"content": content, "lstrip": False, "normalized": True, "rstrip": False, "single_word": False}


def _special_tokens_map() -> dict[str, Any]:
    """``special_tokens_map.json`` of the GLUS checkpoints: LLaMA's BOS/EOS/UNK, pad = ``<unk>``."""
    return {
        "bos_token": _added_token_dict("<s>"),
        "eos_token": _added_token_dict("</s>"),
        "pad_token": "<unk>",
        "unk_token": _added_token_dict("<unk>"),
    }


def _tokenizer_config() -> dict[str, Any]:
    """``tokenizer_config.json`` as transformers 4.31 wrote it for the slow ``LlamaTokenizer``."""
    return {
        "add_bos_token": True,
        "add_eos_token": False,
        "bos_token": {"__type": "AddedToken", **_added_token_dict("<s>")},
        "clean_up_tokenization_spaces": False,
        "eos_token": {"__type": "AddedToken", **_added_token_dict("</s>")},
        "model_max_length": 512,
        "pad_token": None,
        "padding_side": "right",
        "sp_model_kwargs": {},
        "tokenizer_class": "LlamaTokenizer",
        "unk_token": {"__type": "AddedToken", **_added_token_dict("<unk>")},
    }


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` the way transformers 4.31 saves tokenizer JSON files."""
    path.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
