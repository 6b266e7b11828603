"""`summary.json`'s peak RSS is the run's own, whatever started it.

Linux keeps the larger `maxrss` across exec and Python starts children with vfork, so `ru_maxrss` in a
child reports its parent's peak: a `glus` started from a large test run or notebook would report that
memory as its own, and the memory check's test would compare its estimate with the wrong peak.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from glus_cli.cli.runs import peak_memory, peak_rss_bytes

BALLAST_MIB = 800


@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the parent's peak leaks into ru_maxrss on Linux"
)
def test_a_child_reports_its_own_peak_not_its_parents() -> None:
    ballast = bytearray(BALLAST_MIB * 2**20)
    for offset in range(0, len(ballast), 4096):  # touch every page: the parent's RSS grows by the ballast
        ballast[offset] = 1
    code = "from glus_cli.cli.runs import peak_memory; import resource; "
    code += "print(peak_memory()['peak_rss_mib'], resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    own, inherited = (float(value) for value in done.stdout.split())
    assert inherited > BALLAST_MIB  # the kernel's figure carries the parent's peak ...
    assert 0 < own < BALLAST_MIB / 2  # ... the reported one does not
    del ballast


def test_the_peak_is_at_least_what_is_resident_now() -> None:
    resident = bytearray(64 * 2**20)
    for offset in range(0, len(resident), 4096):
        resident[offset] = 1
    assert peak_rss_bytes() >= 64 * 2**20
    assert peak_memory()["peak_rss_mib"] >= 64
