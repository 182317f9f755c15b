"""alseg_monai: slice-based active learning for 3D medical image segmentation.

Implements "Integrating Deep Metric Learning with Coreset for Active Learning in
3D Segmentation" (NeurIPS 2024) on MONAI, pytorch-ignite and faiss.
"""

from __future__ import annotations

import logging

__version__ = "0.1.0"

from .errors import AlsegError, ConfigError, DataError, ResourceError


def _quiet_faiss_loader() -> None:
    """Raise faiss's loader logger to WARNING.

    On import, ``faiss.loader`` logs at INFO a ``ModuleNotFoundError`` for each CPU-specific
    build it probes before the one that loads (AVX512-SPR, AVX512, AVX2): noise in every
    run's log, once per process that imports faiss (the selection code does, lazily, in
    the parent and in every parallel worker, all of which import this package first). Its
    warnings and errors still pass; lower the level again to see which build loaded.
    """
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)


_quiet_faiss_loader()

__all__ = ["AlsegError", "ConfigError", "DataError", "ResourceError", "__version__"]
