"""The GLUS checkpoint configuration (`config.json` of the official releases).

The released `config.json` was written by transformers 4.31 from a LLaVA config: `model_type: "llava"`,
the LLaMA fields, the LLaVA vision fields and GLUS's own `out_dim`. transformers 5 maps `model_type:
"llava"` to its own composite Llava config, which reads these fields differently, so the file is read
here as plain JSON (without torch: the Ray driver reads it) and the `LlamaConfig` is built from its LLaMA
fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from glus_cli.checkpoint_layout import CONFIG_NAME, read_config_json, vision_tower_name
from glus_cli.errors import CheckpointError

if TYPE_CHECKING:
    from transformers import LlamaConfig

DEFAULT_SAM2_CONFIG = "sam2_hiera_l.yaml"
DEFAULT_MAX_POSITIONS = 2048
"""LLaMA-7B's context, for a config.json that does not give `max_position_embeddings`."""

# LLaVA's `downsample_layer`: AvgPool1d(4, 4) over the 256 CLIP patch tokens of one image (fixed in the
# official code, not a config field).
IMAGE_TOKEN_POOL = 4

_LLAMA_FIELDS = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "hidden_act",
    "max_position_embeddings",
    "rms_norm_eps",
    "rope_scaling",
    "bos_token_id",
    "eos_token_id",
    "pad_token_id",
    "tie_word_embeddings",
    "attention_bias",
)
_REQUIRED_FIELDS = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
)


@dataclass(frozen=True)
class GlusConfig:
    """What glus-cli needs from a GLUS `config.json`.

    Attributes:
        llama: the LLaMA fields, as keyword arguments for `transformers.LlamaConfig`.
        vision_tower: Hub id or folder of the CLIP vision tower (`vision_tower` / `mm_vision_tower`).
        mm_vision_select_layer: which CLIP hidden state feeds the projector (-2: the penultimate layer).
        mm_vision_select_feature: `"patch"` drops the CLS token (the only value GLUS uses).
        mm_hidden_size: CLIP hidden width (1024 for ViT-L/14), the projector's input.
        mm_use_im_start_end: whether images are wrapped in `<im_start>`/`<im_end>` (true in GLUS).
        out_dim: width of the `[SEG]` prompt embedding handed to SAM2 (SAM2's hidden width, 256).
        rope_theta: RoPE base (absent in LLaMA-1 configs, meaning 10000).
        sam2_config: a glus-cli extension: the SAM2 yaml to build, when the checkpoint names one (the
            official releases do not; they use `sam2_hiera_l.yaml`).
        raw: the whole JSON, for the run summary.
    """

    llama: dict[str, Any]
    vision_tower: str
    mm_vision_select_layer: int
    mm_vision_select_feature: str
    mm_hidden_size: int
    mm_use_im_start_end: bool
    out_dim: int
    rope_theta: float = 10000.0
    sam2_config: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def hidden_size(self) -> int:
        """Width of the LLaMA residual stream."""
        return int(self.llama["hidden_size"])

    @property
    def max_positions(self) -> int:
        """Positions the LLaMA takes (`max_position_embeddings`; 2048, LLaMA-7B's, when absent, as in
        transformers 4.31's `LlamaConfig`)."""
        return int(self.llama.get("max_position_embeddings", DEFAULT_MAX_POSITIONS))

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, origin: str = "config.json") -> GlusConfig:
        """Validate a parsed `config.json` and keep the fields GLUS uses.

        Raises:
            CheckpointError: the file is not a GLUS/LLaVA config or lacks a required field.
        """
        model_type = data.get("model_type")
        architectures = data.get("architectures") or []
        if model_type != "llava" and "GLUSForCausalLM" not in architectures:
            raise CheckpointError(
                f"{origin} is not a GLUS checkpoint config (model_type={model_type!r}, "
                f"architectures={architectures!r}; expected model_type 'llava' / GLUSForCausalLM)"
            )
        missing = [name for name in (*_REQUIRED_FIELDS, "out_dim", "mm_hidden_size") if name not in data]
        if missing:
            raise CheckpointError(f"{origin} lacks the GLUS field(s) {', '.join(missing)}")
        vision_tower = vision_tower_name(data, origin)
        select_feature = data.get("mm_vision_select_feature", "patch")
        if select_feature != "patch":
            raise CheckpointError(f"{origin}: mm_vision_select_feature={select_feature!r} is not supported")
        llama = {name: data[name] for name in _LLAMA_FIELDS if name in data}
        llama.setdefault("num_key_value_heads", llama["num_attention_heads"])
        llama.setdefault("tie_word_embeddings", False)
        return cls(
            llama=llama,
            vision_tower=str(vision_tower),
            mm_vision_select_layer=int(data.get("mm_vision_select_layer", -2)),
            mm_vision_select_feature=select_feature,
            mm_hidden_size=int(data["mm_hidden_size"]),
            mm_use_im_start_end=bool(data.get("mm_use_im_start_end", True)),
            out_dim=int(data["out_dim"]),
            rope_theta=float(data.get("rope_theta", 10000.0)),
            sam2_config=data.get("sam2_config"),
            raw=dict(data),
        )

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> GlusConfig:
        """Read `<folder>/config.json`.

        Raises:
            CheckpointError: the file is missing, not JSON, or not a GLUS config.
        """
        folder = Path(folder)
        return cls.from_dict(read_config_json(folder), origin=str(folder / CONFIG_NAME))

    def llama_config(self) -> LlamaConfig:
        """The `LlamaConfig` of the language model (eager attention, as the official 4.31 run)."""
        from transformers import LlamaConfig  # imports torch: only when a model is built

        config = LlamaConfig(
            **self.llama,
            rope_parameters={"rope_type": "default", "rope_theta": self.rope_theta},
            use_cache=False,
        )
        config._attn_implementation = "eager"
        return config
