"""Group-based contrastive learning (paper Sec. 3.2.1, Eq. 4-5, Appendix C).

A ResNet-18 SimCLR encoder trained with NT-Xent plus patient / volume / adjacent-slice
group losses on batches from :class:`GroupBatchSampler`; its pooled features are the
slice embeddings Coreset selects with.
"""

from __future__ import annotations

from .augment import RandAffine2Dd, RandErasingd, RandGaussianBlurd, RandResizedCropd, paper_augmentation
from .embeddings import embed, load_embeddings, project, save_embeddings
from .loss import GroupNTXentLoss
from .networks import SimCLREncoder
from .objective import ContrastiveObjective
from .sampler import GroupBatchSampler
from .trainer import EncoderSpec, train_encoder

__all__ = [
    "ContrastiveObjective",
    "EncoderSpec",
    "GroupBatchSampler",
    "GroupNTXentLoss",
    "RandAffine2Dd",
    "RandErasingd",
    "RandGaussianBlurd",
    "RandResizedCropd",
    "SimCLREncoder",
    "embed",
    "load_embeddings",
    "paper_augmentation",
    "project",
    "save_embeddings",
    "train_encoder",
]
