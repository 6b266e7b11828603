"""Which model a run loads and how, as one typed value: what a local load and a Ray worker both take.

`ModelSpec` names the checkpoint (folder or Hub id) and every loading option. The command line builds it
from its options (`glus_cli.cli.options.ModelArgs.spec`); `glus batch --ray` hands the same value to each
worker (`glus_cli.distributed.worker.WorkerSpec.model`), only its device set to the worker's. Building
and passing it imports neither torch nor the Hub client: `resolve` and `load` import what they need.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from glus_cli.precision import Quantize
from glus_cli.protocol import FuserGamma

if TYPE_CHECKING:
    from glus_cli.model.glus import GlusModel, LoadProgress
    from glus_cli.protocol import Workload


@dataclass(frozen=True)
class ResolvedModel:
    """Where a spec's files are on this machine.

    Attributes:
        checkpoint_dir: the GLUS checkpoint folder (a local folder, or a Hub snapshot in the cache).
        vision_tower_dir: the CLIP vision tower's folder.
    """

    checkpoint_dir: Path
    vision_tower_dir: Path


@dataclass(frozen=True)
class ModelSpec:
    """A GLUS model and how to load it (the arguments of `glus_cli.model.glus.load_glus`).

    Attributes:
        source: a checkpoint folder or a Hub id such as ``Swindl/GLUS-A``.
        revision: Hub revision of `source`.
        vision_tower: CLIP tower (Hub id or folder) instead of the checkpoint's.
        sam2_config: SAM2 config (packaged name or yaml path).
        device: ``auto``, ``cuda``, ``cuda:N``, ``mps`` or ``cpu``.
        dtype: ``auto`` or a dtype spelling (`glus_cli.precision.DType`).
        quantize: ``4bit`` or ``8bit`` LLM, or None.
        fuser_gamma: ``checkpoint`` or ``official-eval``.
    """

    source: str
    revision: str | None = None
    vision_tower: str | None = None
    sam2_config: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    quantize: Quantize | None = None
    fuser_gamma: FuserGamma = "checkpoint"

    def on_device(self, device: str) -> ModelSpec:
        """The same spec loading on `device` (a Ray worker's)."""
        return replace(self, device=device)

    def check_device(self) -> None:
        """Check that the device exists and is available here (imports torch).

        Raises:
            InputError: an unknown device name.
            ResourceError: a device this machine does not have.
        """
        from glus_cli.model.glus import resolve_device

        resolve_device(self.device)

    def resolve(self, *, weights: bool = True) -> ResolvedModel:
        """The checkpoint's and the vision tower's folders, from the cache or fetched from the Hub.

        Args:
            weights: also fetch the weight files; False fetches only the configs and the tokenizer, all
                that the checks before loading read (the Ray driver, which never loads the model).

        Raises:
            CheckpointError, NetworkError, OutputError: see `glus_cli.hub.resolve_model`.
        """
        from glus_cli import hub

        folder = hub.resolve_model(self.source, revision=self.revision, weights=weights)
        tower = self.vision_tower or hub.checkpoint_vision_tower(folder)
        return ResolvedModel(folder, hub.resolve_vision_tower(tower, weights=weights))

    def load(self, workload: Workload | None = None, on_progress: LoadProgress | None = None) -> GlusModel:
        """Load the model (checks the memory for `workload` first; see `load_glus`)."""
        from glus_cli.model.glus import load_glus

        return load_glus(
            self.source,
            revision=self.revision,
            device=self.device,
            dtype=self.dtype,
            vision_tower=self.vision_tower,
            sam2_config=self.sam2_config,
            quantize=self.quantize,
            fuser_gamma=self.fuser_gamma,
            workload=workload,
            on_progress=on_progress,
        )
