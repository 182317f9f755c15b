"""alseg_monai: slice-based active learning for 3D medical image segmentation.

Implements "Integrating Deep Metric Learning with Coreset for Active Learning in
3D Segmentation" (NeurIPS 2024) on MONAI, pytorch-ignite and faiss.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import AlsegError, ConfigError, DataError, ResourceError

__all__ = ["AlsegError", "ConfigError", "DataError", "ResourceError", "__version__"]
