"""Terminal output: one stdout console for results, one stderr console for progress, logs and errors."""

from __future__ import annotations

import logging
import os

from rich.console import Console
from rich.logging import RichHandler

# OpenCV and its FFmpeg back-end print their own warnings straight to file descriptor 2 ("moov atom not
# found", "VIDEOIO(FFMPEG): ... can't be used to capture by name") before glus-cli's one-line error about
# the same file. Both read these variables when they first start (after this module is imported, since
# the commands import OpenCV later); a user's own setting wins.
_USER_OPENCV_LOG_LEVEL = os.environ.get("OPENCV_LOG_LEVEL")
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET

_OPENCV_LOG_ERROR, _OPENCV_LOG_WARNING = 2, 3  # cv2.utils.logging.LOG_LEVEL_*

console = Console()
error_console = Console(stderr=True)


def configure_logging(level: int) -> None:
    """Route library logging to stderr through Rich; silence third-party progress bars and chatter."""
    logging.basicConfig(
        level=level,
        format="%(message)s",
        handlers=[RichHandler(console=error_console, show_path=False, show_time=False, markup=False)],
        force=True,
    )
    for noisy in ("transformers", "huggingface_hub", "hydra", "PIL", "httpx", "httpx2", "urllib3"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    from huggingface_hub.utils import enable_progress_bars
    from transformers.utils import logging as hf_logging

    if _USER_OPENCV_LOG_LEVEL is None:  # OpenCV may have been imported before this module
        import cv2

        cv2.utils.logging.setLogLevel(_OPENCV_LOG_ERROR if level > logging.DEBUG else _OPENCV_LOG_WARNING)
    # transformers' switch also turns off huggingface-hub's bars, which `glus download` shows; keep those.
    hf_logging.disable_progress_bar()
    enable_progress_bars()
    hf_logging.set_verbosity_error()
