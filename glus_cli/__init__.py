"""glus-cli: segment an object in a video from a sentence with GLUS (CVPR 2025)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("glus-cli")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
