"""Terminal output: one stdout console for results, one stderr console for progress, logs and errors."""

from __future__ import annotations

import logging

from rich.console import Console
from rich.logging import RichHandler

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
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
