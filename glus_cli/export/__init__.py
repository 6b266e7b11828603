"""``glus export``: a run's masks in the formats people train and annotate with, read without a model.

One module per format (`coco`, `ytvis`, `yolo`, `mots`), over a reader of run folders
(`glus_cli.run_folder`), the confidence filter (`instances`), the categories (`categories`), mask shapes
(`geometry`) and the atomic output folder (`output`); `export_run` (in `run`) wires them. Torch-free.
"""

from glus_cli.export.run import FORMATS, ExportOptions, ExportReport, export_run

__all__ = ["FORMATS", "ExportOptions", "ExportReport", "export_run"]
