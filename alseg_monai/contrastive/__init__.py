"""Group-based contrastive learning (paper Sec. 3.2.1, Eq. 4-5, Appendix C).

A ResNet-18 SimCLR encoder trained with NT-Xent plus patient / volume / adjacent-slice
group losses on batches from :class:`GroupBatchSampler`; its pooled features are the
slice embeddings Coreset selects with.
"""

from __future__ import annotations

from .augment import RandAffine2Dd, RandErasingd, RandGaussianBlurd, RandResizedCropd, TwoViewsd, paper_augmentation
from .embeddings import (
    EMBEDDING_IDS_FILE,
    EMBEDDINGS_FILE,
    PROJECTIONS_FILE,
    embed,
    load_embeddings,
    project,
    save_embeddings,
)
from .groups import ROLE_ORDER, batch_group_ids, encode_ids
from .handlers import AtomicDiskSaver, AugmentationSeedHandler, SetEpochHandler, latest_checkpoint
from .loss import GroupNTXentLoss, group_masks
from .networks import SimCLREncoder
from .objective import LOSS_TERMS, ContrastiveObjective
from .sampler import GROUPINGS, GroupBatchSampler, paper_batch_size
from .trainer import (
    ENCODER_FILE,
    attach_training_handlers,
    build_contrastive_loader,
    create_contrastive_trainer,
    resume_from_checkpoint,
    train_encoder,
)

__all__ = [
    "AtomicDiskSaver",
    "AugmentationSeedHandler",
    "ContrastiveObjective",
    "EMBEDDINGS_FILE",
    "PROJECTIONS_FILE",
    "EMBEDDING_IDS_FILE",
    "ENCODER_FILE",
    "GROUPINGS",
    "GroupBatchSampler",
    "GroupNTXentLoss",
    "LOSS_TERMS",
    "ROLE_ORDER",
    "RandAffine2Dd",
    "RandErasingd",
    "RandGaussianBlurd",
    "RandResizedCropd",
    "SetEpochHandler",
    "SimCLREncoder",
    "TwoViewsd",
    "attach_training_handlers",
    "batch_group_ids",
    "build_contrastive_loader",
    "create_contrastive_trainer",
    "embed",
    "encode_ids",
    "group_masks",
    "latest_checkpoint",
    "load_embeddings",
    "paper_augmentation",
    "project",
    "paper_batch_size",
    "resume_from_checkpoint",
    "save_embeddings",
    "train_encoder",
]
