"""The precision probe forced both ways, so tests of the default path run every plan on every CPU.

`--dtype auto` asks `glus_cli.hardware.probe_device` whether the CPU computes bf16 natively (AMX or
AVX512-BF16) and picks bfloat16 there, float32 elsewhere. A test of the default path that used the real
answer would check one plan per machine; with the answer forced, every machine checks both: on a CPU
without bf16 the bf16 default runs emulated (slow, but the tiny checkpoint costs seconds), on one with AMX
the float32 default runs too.

Use the `default_plan` fixture (module scope, parametrised), or `forced_cpu_probe` for one block.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch

from glus_cli import hardware
from glus_cli.precision import DeviceCapabilities

PLANS = {False: "float32", True: "bfloat16"}
"""The dtype `--dtype auto` picks on a CPU without and with native bf16."""


@contextmanager
def forced_cpu_probe(native_bf16: bool) -> Iterator[DeviceCapabilities]:
    """Within it, the CPU reports native bf16 or not, whatever it has (other devices are asked as usual)."""
    found = "AMX" if native_bf16 else "no AMX or AVX512-BF16"
    capabilities = DeviceCapabilities("cpu", native_bf16, f"{found} (forced by the test)")
    real_probe = hardware.probe_device

    def probe(device: torch.device) -> DeviceCapabilities:
        return capabilities if device.type == "cpu" else real_probe(device)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(hardware, "probe_device", probe)
        yield capabilities


@pytest.fixture(scope="module", params=[False, True], ids=["cpu-without-bf16", "cpu-with-bf16"])
def default_plan(request: pytest.FixtureRequest) -> Iterator[str]:
    """The dtype of the default plan, with the CPU probe forced to give it (both, one after the other)."""
    with forced_cpu_probe(request.param):
        yield PLANS[request.param]
