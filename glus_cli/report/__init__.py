"""``report.html``: a run folder as one static page (overlays, per-frame confidence, scores, worst frames).

`write_report` gathers what the folder holds (`glus_cli.report.gather`), draws the worst-frame thumbnails
when a ground truth is given (`glus_cli.report.thumbnails`) and writes the page with its style, script and
data inline (`glus_cli.report.page`; the template is ``assets/`` package data). Media are linked by
relative paths into the folder, so the page needs no server and no network.
"""

from glus_cli.report.build import GroundTruth, write_report
from glus_cli.report.page import REPORT_NAME

__all__ = ["REPORT_NAME", "GroundTruth", "write_report"]
