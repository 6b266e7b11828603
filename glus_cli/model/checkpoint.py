"""Reading the official GLUS weight files and routing every key to its module.

Official layout (transformers 4.31 `save_pretrained` of `GLUSForCausalLM`):
- `model.embed_tokens.*`, `model.layers.*`, `model.norm.*`, `lm_head.*`: a plain LLaMA (LoRA merged), the
  parameter names of transformers' `LlamaForCausalLM`;
- `model.mm_projector.{weight,bias}`: Linear(mm_hidden_size, hidden_size);
- `model.text_hidden_fcs.0.{0,2}.{weight,bias}`: the `[SEG]` head;
- `model.visual_model.*`: a SAM2Base state dict.
Ignored, as the official loader ignores them: `model.vision_tower.*` (CLIP always comes from the
`vision_tower` named in config.json) and the persistent `rotary_emb.inv_freq` buffers 4.31 saved (they
are bf16-rounded and must not drive RoPE).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open

from glus_cli.checkpoint_layout import SINGLE_WEIGHT_FILES, WEIGHT_INDEX_FILES, index_shard_names
from glus_cli.errors import CheckpointError

LLM_PREFIXES = ("model.embed_tokens.", "model.layers.", "model.norm.", "lm_head.")
PROJECTOR_PREFIX = "model.mm_projector."
SEG_HEAD_PREFIX = "model.text_hidden_fcs."
SAM2_PREFIX = "model.visual_model."
IGNORED_PREFIXES = ("model.vision_tower.",)
IGNORED_SUFFIXES = (".rotary_emb.inv_freq",)

_MAX_KEYS_IN_MESSAGE = 8


def weight_files(folder: Path) -> list[Path]:
    """The weight shards of a checkpoint folder (safetensors preferred over .bin, index or single file).

    Raises:
        CheckpointError: no weights, a malformed index, or a shard the index names is missing.
    """
    for index_name in WEIGHT_INDEX_FILES:
        index_path = folder / index_name
        if index_path.is_file():
            shards = [folder / name for name in index_shard_names(index_path)]
            missing = [shard.name for shard in shards if not shard.is_file()]
            if missing:
                raise CheckpointError(
                    f"{folder}: weight shard(s) named in {index_name} are missing: {missing}"
                )
            return shards
    for name in SINGLE_WEIGHT_FILES:
        if (folder / name).is_file():
            return [folder / name]
    expected = f"{' or '.join(WEIGHT_INDEX_FILES)} with shards, or {' or '.join(SINGLE_WEIGHT_FILES)}"
    raise CheckpointError(f"{folder} has no weights (expected {expected})")


def iter_tensors(path: Path) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, tensor) pairs of one shard, on the CPU.

    `.bin` shards are read with `torch.load(weights_only=True)` (no pickled code runs) and memory-mapped,
    so a 10 GB shard is not copied into RAM before its tensors are used.
    """
    try:
        if path.suffix == ".safetensors":
            with safe_open(str(path), framework="pt", device="cpu") as handle:
                for name in handle.keys():  # noqa: SIM118 (safe_open handles are not iterable)
                    yield name, handle.get_tensor(name)
            return
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as error:  # torch and safetensors raise many unrelated types for a corrupt file
        raise CheckpointError(f"cannot read weight file {path}: {error}") from error
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} does not hold a state dict")
    yield from state.items()


@dataclass
class GlusStateDicts:
    """A GLUS checkpoint split by module, with the module-local key names."""

    llm: dict[str, torch.Tensor] = field(default_factory=dict)
    mm_projector: dict[str, torch.Tensor] = field(default_factory=dict)
    text_hidden_fcs: dict[str, torch.Tensor] = field(default_factory=dict)
    sam2: dict[str, torch.Tensor] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)


def route_key(name: str) -> tuple[str, str] | None:
    """Which module an official key belongs to and its name there; None for keys the official loader ignores.

    Raises:
        CheckpointError: a key that belongs to no GLUS module.
    """
    if name.endswith(IGNORED_SUFFIXES) or name.startswith(IGNORED_PREFIXES):
        return None
    if name.startswith(LLM_PREFIXES):
        return "llm", name
    for prefix, module in (
        (PROJECTOR_PREFIX, "mm_projector"),
        (SEG_HEAD_PREFIX, "text_hidden_fcs"),
        (SAM2_PREFIX, "sam2"),
    ):
        if name.startswith(prefix):
            return module, name[len(prefix) :]
    raise CheckpointError(f"unexpected key in the checkpoint: {name}")


def read_checkpoint(folder: Path, on_shard: Callable[[int], None] | None = None) -> GlusStateDicts:
    """Read every shard of a GLUS checkpoint and split its tensors by module.

    Args:
        folder: the checkpoint folder.
        on_shard: called with each shard's index (0-based, in `weight_files` order) before it is read.

    Raises:
        CheckpointError: unreadable shards or keys that belong to no GLUS module (all named at once).
    """
    parts = GlusStateDicts()
    unexpected: list[str] = []
    for index, shard in enumerate(weight_files(folder)):
        if on_shard is not None:
            on_shard(index)
        for name, tensor in iter_tensors(shard):
            try:
                routed = route_key(name)
            except CheckpointError:
                unexpected.append(name)
                continue
            if routed is None:
                parts.ignored.append(name)
            else:
                module, local_name = routed
                getattr(parts, module)[local_name] = tensor
    if unexpected:
        raise CheckpointError(f"{folder} has keys that belong to no GLUS module: {_key_list(unexpected)}")
    return parts


def load_into(
    module: torch.nn.Module, state: dict[str, torch.Tensor], *, what: str, prefix: str, assign: bool
) -> None:
    """Load `state` into `module`, every parameter and persistent buffer exactly once.

    Args:
        module: the destination (may live on the meta device when `assign` is True).
        state: module-local key names.
        what: the module's name in error messages (e.g. "SAM2 sam2_hiera_l.yaml").
        prefix: the module's key prefix in the checkpoint, so that errors name the keys as they are
            written there (e.g. "model.visual_model.").
        assign: take the tensors as they are (meta-device construction) instead of copying.

    Raises:
        CheckpointError: naming the missing and unexpected keys, or a shape mismatch.
    """
    expected = set(module.state_dict().keys())
    missing = sorted(expected - state.keys())
    unexpected = sorted(state.keys() - expected)
    problems = []
    if missing:
        problems.append(f"missing {_key_list([prefix + key for key in missing])}")
    if unexpected:
        problems.append(f"unexpected {_key_list([prefix + key for key in unexpected])}")
    if problems:
        raise CheckpointError(f"checkpoint does not fit {what}: {'; '.join(problems)}")
    _check_dtypes(module, state, what=what, prefix=prefix)
    try:
        module.load_state_dict(state, strict=True, assign=assign)
    except RuntimeError as error:  # size mismatches
        first_line = str(error).strip().splitlines()[-1].strip()
        raise CheckpointError(f"checkpoint does not fit {what}: {first_line}") from error


def _check_dtypes(module: torch.nn.Module, state: dict[str, torch.Tensor], *, what: str, prefix: str) -> None:
    """Refuse integer or boolean tensors where the module has floating-point weights.

    `load_state_dict` would report them as a size mismatch of two identical shapes; the cause is the dtype.

    Raises:
        CheckpointError: naming the keys and their dtypes.
    """
    wrong = [
        f"{prefix}{name} ({str(state[name].dtype).removeprefix('torch.')})"
        for name, expected in module.state_dict().items()
        if expected.is_floating_point() and not state[name].is_floating_point()
    ]
    if wrong:
        raise CheckpointError(
            f"checkpoint does not fit {what}: weights must be floating point, but these are not: "
            f"{_key_list(wrong)}"
        )


def _key_list(keys: list[str]) -> str:
    shown = ", ".join(keys[:_MAX_KEYS_IN_MESSAGE])
    more = len(keys) - _MAX_KEYS_IN_MESSAGE
    return f"{shown} (and {more} more)" if more > 0 else shown
