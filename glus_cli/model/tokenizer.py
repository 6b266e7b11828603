"""The prompt tokenizer of the official GLUS release, reproduced with `sentencepiece` alone.

GLUS was trained and evaluated with transformers 4.31's *slow* ``LlamaTokenizer`` (``use_fast=False``,
``legacy=True``) and LLaVA's ``tokenizer_image_token``. transformers 5 has no slow LLaMA tokenizer, and its
fast one tokenizes these prompts differently (it keeps the newlines around the image markers, has no
per-piece dummy prefix, and splits runs of spaces differently from sentencepiece). The model only
knows the old ids, so :class:`GlusTokenizer` applies the old rules itself, on the same
``tokenizer.model``.

Why these rules are 4.31's slow tokenizer. ``PreTrainedTokenizer.tokenize`` (``tokenization_utils.py``
4.31) does, for one string:

1. **Split** it with a trie on the "no-split" tokens: every token added to the vocabulary
   (``added_tokens.json``: ``<im_patch>``, ``<im_start>``, ``<im_end>``, ``[SEG]``) and the special
   tokens ``<s>``, ``</s>``, ``<unk>``. The trie takes the leftmost, then longest match. None of these
   tokens is a substring of another, and none can overlap another in a text (each has ``<`` or ``[``
   only at its start), so a regular expression that tries the longest token first cuts the same
   pieces.
2. **Strip** around each no-split token. Tokens registered as ``AddedToken`` objects follow their own
   ``lstrip``/``rstrip`` flags: ``LlamaTokenizer.__init__`` wraps ``<s>``, ``</s>``, ``<unk>`` in
   ``AddedToken(lstrip=False, rstrip=False)``, so nothing around them is touched (``</s>USER:`` keeps
   ``USER:`` as it is). Tokens added with ``add_tokens`` (the four of ``added_tokens.json``) are plain
   strings, and for those the default branch strips *both* neighbours: the text on the left is
   ``rstrip()``-ed, the text on the right ``lstrip()``-ed (Python's ``str`` strip: spaces, ``\\n`` and
   all other Unicode white space). The list is updated in place while walking it, and pieces that end
   up empty are dropped. Hence the ``\\n`` around every image and the space before ``[SEG]`` vanish.
3. **Encode each remaining text piece separately** with ``LlamaTokenizer._tokenize``, which with
   ``legacy=True`` is just ``sp_model.encode(piece)``. Sentencepiece treats every call as a fresh
   sentence and, with the LLaMA model's ``add_dummy_prefix``, prepends ``▁`` to it. So every piece,
   not only the first, starts with a dummy-prefix ``▁``: ``[SEG].`` gives ``[SEG]``, then the ids of
   ``.`` encoded alone (``▁.``); ``</s>USER:`` gives ``</s>``, then ``▁US ER :``; and the trailing space
   of a prompt ending in ``"is "`` becomes a final ``▁``. The pieces are mapped to ids with
   ``piece_to_id``, which for sentencepiece's own output equals encoding straight to ids.
4. **Add BOS** (``add_bos_token=True``, ``add_eos_token=False`` in the LLaMA tokenizer config).

``tokenizer_image_token`` (LLaVA ``mm_utils.py``) then splits the prompt on the text ``<image>``,
tokenizes every chunk independently (each with its BOS), and joins them as
``BOS + chunk0[1:] + [-200] + chunk1[1:] + …``: one BOS, one ``IMAGE_TOKEN_INDEX`` per image.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import sentencepiece as spm

from glus_cli.checkpoint_layout import read_json_object
from glus_cli.errors import CheckpointError

logger = logging.getLogger(__name__)

IMAGE_TOKEN_INDEX = -200
"""Placeholder id for one image in prompt ids; the language model replaces it with the image's tokens."""

IMAGE_PLACEHOLDER = "<image>"
"""Text marking an image in a prompt string (never a vocabulary token: the prompt is split on it)."""

SEG_TOKEN = "[SEG]"
IM_START_TOKEN = "<im_start>"
IM_END_TOKEN = "<im_end>"
IM_PATCH_TOKEN = "<im_patch>"
REQUIRED_ADDED_TOKENS = (IM_START_TOKEN, IM_END_TOKEN, SEG_TOKEN)

TOKENIZER_MODEL_FILE = "tokenizer.model"
ADDED_TOKENS_FILE = "added_tokens.json"
SPECIAL_TOKENS_MAP_FILE = "special_tokens_map.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"

_DEFAULT_SPECIAL_TOKENS = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}


class GlusTokenizer:
    """transformers-4.31 slow ``LlamaTokenizer`` (``legacy=True``) plus LLaVA's ``tokenizer_image_token``.

    Build it with :meth:`from_pretrained` on a checkpoint folder. The rules and the reasoning that they
    equal the official tokenizer are in this module's docstring.
    """

    def __init__(
        self,
        processor: spm.SentencePieceProcessor,
        added_tokens: dict[str, int],
        special_tokens: dict[str, str],
    ) -> None:
        """Wrap a loaded sentencepiece model.

        Args:
            processor: the LLaMA sentencepiece model (``tokenizer.model``).
            added_tokens: token → id for the tokens appended after the sentencepiece vocabulary
                (``added_tokens.json``); ids already validated by :meth:`from_pretrained`.
            special_tokens: ``bos_token``, ``eos_token``, ``unk_token`` → their text; each must be a
                piece of ``processor``.
        """
        self._sp = processor
        self._added_tokens = dict(added_tokens)
        self._special_ids = {text: processor.piece_to_id(text) for text in special_tokens.values()}
        self._bos_id = self._special_ids[special_tokens["bos_token"]]
        self._eos_id = self._special_ids[special_tokens["eos_token"]]
        self._unk_id = self._special_ids[special_tokens["unk_token"]]
        self._no_split_ids = {**self._special_ids, **self._added_tokens}
        by_length = sorted(self._no_split_ids, key=len, reverse=True)
        self._split_pattern = re.compile("(" + "|".join(re.escape(token) for token in by_length) + ")")
        self._id_to_text = {token_id: text for text, token_id in self._no_split_ids.items()}
        self._id_to_text[IMAGE_TOKEN_INDEX] = IMAGE_PLACEHOLDER

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> GlusTokenizer:
        """Load the tokenizer files of a GLUS checkpoint folder.

        Reads ``tokenizer.model`` (required), ``added_tokens.json`` (required: it must hold ``[SEG]``,
        ``<im_start>`` and ``<im_end>``), and, when present, ``tokenizer_config.json`` and
        ``special_tokens_map.json`` for the BOS/EOS/UNK texts (the latter wins, as in transformers 4.31).
        Added-token ids come from ``added_tokens.json``; like 4.31's slow loader, they must continue the
        sentencepiece vocabulary without gaps.

        Raises:
            CheckpointError: a file is missing or unreadable, a required token is missing, or the ids or
                settings are not those of a GLUS (LLaMA) tokenizer.
        """
        folder = Path(folder)
        model_path = folder / TOKENIZER_MODEL_FILE
        if not model_path.is_file():
            raise CheckpointError(f"{folder}: no {TOKENIZER_MODEL_FILE} (the LLaMA sentencepiece tokenizer)")
        processor = spm.SentencePieceProcessor()
        try:
            processor.Load(str(model_path))
        except (OSError, RuntimeError) as error:
            raise CheckpointError(f"{model_path}: not a sentencepiece model ({error})") from error

        config = _read_optional_json(folder / TOKENIZER_CONFIG_FILE)
        special_tokens_map = _read_optional_json(folder / SPECIAL_TOKENS_MAP_FILE)
        added_tokens_path = folder / ADDED_TOKENS_FILE
        if not added_tokens_path.is_file():
            raise CheckpointError(
                f"{folder}: no {ADDED_TOKENS_FILE} (it must define {', '.join(REQUIRED_ADDED_TOKENS)})"
            )
        added_tokens = read_json_object(added_tokens_path)

        _check_tokenizer_config(config, folder)
        special_tokens = _special_token_texts(config, special_tokens_map)
        _check_special_tokens(processor, special_tokens, model_path)
        _check_added_tokens(processor, added_tokens, added_tokens_path)
        return cls(processor, added_tokens, special_tokens)

    @property
    def bos_id(self) -> int:
        """Id of the beginning-of-sequence token ``<s>``."""
        return self._bos_id

    @property
    def eos_id(self) -> int:
        """Id of the end-of-sequence token ``</s>`` (the llava_v1 separator after an assistant turn)."""
        return self._eos_id

    @property
    def unk_id(self) -> int:
        """Id of the unknown token ``<unk>``."""
        return self._unk_id

    @property
    def pad_id(self) -> int:
        """Padding id: the unknown token, as the official inference sets it (``pad_token = unk_token``)."""
        return self._unk_id

    @property
    def seg_token_id(self) -> int:
        """Id of ``[SEG]``, the token whose prediction triggers a mask."""
        return self._added_tokens[SEG_TOKEN]

    @property
    def im_start_id(self) -> int:
        """Id of ``<im_start>``, written before every image."""
        return self._added_tokens[IM_START_TOKEN]

    @property
    def im_end_id(self) -> int:
        """Id of ``<im_end>``, written after every image."""
        return self._added_tokens[IM_END_TOKEN]

    @property
    def vocab_size(self) -> int:
        """Sentencepiece pieces plus added tokens: the number of embedding rows the checkpoint must have."""
        return self._sp.get_piece_size() + len(self._added_tokens)

    def token_to_id(self, token: str) -> int:
        """Id of one token: an added token, or a sentencepiece piece such as ``"▁the"`` or ``"<0x0A>"``.

        Raises:
            KeyError: ``token`` is not in the vocabulary.
        """
        if token in self._added_tokens:
            return self._added_tokens[token]
        token_id = self._sp.piece_to_id(token)
        if token_id == self._unk_id and token != self._sp.id_to_piece(self._unk_id):
            raise KeyError(f"{token!r} is not in the vocabulary")
        return token_id

    def encode(self, text: str, add_bos: bool = True) -> list[int]:
        """Token ids of ``text`` as transformers 4.31's slow ``LlamaTokenizer`` gives them (rules 1-4).

        Args:
            text: any text without ``<image>`` semantics (use :meth:`encode_prompt` for prompts).
            add_bos: prepend the BOS id, as ``tokenizer(text).input_ids`` does.
        """
        ids = [self._bos_id] if add_bos else []
        for piece in self._split_and_strip(text):
            if piece in self._no_split_ids:
                ids.append(self._no_split_ids[piece])
            else:
                ids.extend(self._sp.encode(piece))
        return ids

    def encode_prompt(self, prompt: str) -> list[int]:
        """Ids of a prompt with ``<image>`` markers, as LLaVA's ``tokenizer_image_token`` gives them.

        Each ``<image>``-separated chunk is tokenized on its own (so each chunk's first piece gets its
        own dummy prefix), the BOS is kept once at the start, and every ``<image>`` becomes one
        :data:`IMAGE_TOKEN_INDEX`.
        """
        chunks = prompt.split(IMAGE_PLACEHOLDER)
        ids = self.encode(chunks[0])
        for chunk in chunks[1:]:
            ids.append(IMAGE_TOKEN_INDEX)
            ids.extend(self.encode(chunk, add_bos=False))
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        """Readable text of ids, for logs: added and special tokens verbatim, ``-200`` as ``<image>``.

        Runs of ordinary pieces are decoded by sentencepiece, which drops each run's leading dummy
        prefix; white space that the tokenizer stripped is not restored, so this is not an inverse of
        :meth:`encode`.
        """
        parts: list[str] = []
        run: list[int] = []
        for token_id in ids:
            text = self._id_to_text.get(token_id)
            if text is None:
                run.append(token_id)
                continue
            if run:
                parts.append(self._sp.decode(run))
                run = []
            parts.append(text)
        if run:
            parts.append(self._sp.decode(run))
        return "".join(parts)

    def _split_and_strip(self, text: str) -> list[str]:
        """Rules 1-2: cut ``text`` at no-split tokens, strip around added tokens, drop empty pieces."""
        pieces = [piece for piece in self._split_pattern.split(text) if piece]
        for index in range(len(pieces)):
            # Only added tokens strip their neighbours; the special tokens are AddedToken(lstrip=False,
            # rstrip=False) in 4.31. Neighbours are read after earlier strips, as 4.31 edits in place.
            if pieces[index] in self._added_tokens:
                if index + 1 < len(pieces):
                    pieces[index + 1] = pieces[index + 1].lstrip()
                if index > 0:
                    pieces[index - 1] = pieces[index - 1].rstrip()
        return [piece for piece in pieces if piece]


def _read_optional_json(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``, or ``{}`` when the file does not exist (both files are optional)."""
    return read_json_object(path) if path.is_file() else {}


def _check_tokenizer_config(config: dict[str, Any], folder: Path) -> None:
    """Reject settings under which 4.31 would have built different prompt ids than GLUS was trained on."""
    if config.get("add_bos_token", True) is not True or config.get("add_eos_token", False) is not False:
        raise CheckpointError(
            f"{folder / TOKENIZER_CONFIG_FILE}: add_bos_token must be true and add_eos_token false "
            "(the LLaMA prompt format GLUS was trained with)"
        )
    if config.get("legacy", True) is False:
        logger.warning(
            "%s sets legacy=false; GLUS was trained with the legacy LLaMA tokenization, which glus-cli uses",
            folder / TOKENIZER_CONFIG_FILE,
        )


def _special_token_texts(config: dict[str, Any], special_tokens_map: dict[str, Any]) -> dict[str, str]:
    """BOS/EOS/UNK texts: defaults, then ``tokenizer_config.json``, then ``special_tokens_map.json``."""
    texts = dict(_DEFAULT_SPECIAL_TOKENS)
    for source in (config, special_tokens_map):
        for key in texts:
            value = source.get(key)
            if isinstance(value, dict):  # a serialized AddedToken
                value = value.get("content")
            if isinstance(value, str) and value:
                texts[key] = value
    return texts


def _check_special_tokens(processor: spm.SentencePieceProcessor, texts: dict[str, str], path: Path) -> None:
    """Each special token must be a piece of the sentencepiece model."""
    unk_piece = processor.id_to_piece(processor.unk_id())
    for key, text in texts.items():
        if processor.piece_to_id(text) == processor.unk_id() and text != unk_piece:
            name = key.removesuffix("_token")
            raise CheckpointError(f"{path}: the {name} token {text!r} is not a piece of the model")


def _check_added_tokens(processor: spm.SentencePieceProcessor, added: dict[str, Any], path: Path) -> None:
    """Required tokens present, ids continuing the sentencepiece vocabulary, none already a piece."""
    missing = [token for token in REQUIRED_ADDED_TOKENS if token not in added]
    if missing:
        raise CheckpointError(f"{path}: missing {', '.join(missing)} (not a GLUS tokenizer)")
    base_size = processor.get_piece_size()
    ordered = sorted(added.items(), key=lambda item: item[1] if isinstance(item[1], int) else -1)
    for offset, (token, token_id) in enumerate(ordered):
        if not isinstance(token_id, int) or token_id != base_size + offset:
            raise CheckpointError(
                f"{path}: {token!r} has id {token_id!r}, expected {base_size + offset} "
                f"(added tokens must follow the {base_size} sentencepiece pieces without gaps)"
            )
        if processor.piece_to_id(token) != processor.unk_id():
            raise CheckpointError(f"{path}: {token!r} is already a piece of {TOKENIZER_MODEL_FILE}")
