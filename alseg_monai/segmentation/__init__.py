"""Per-round segmentation: networks, losses, ignite engines and handlers."""

from __future__ import annotations

from .handlers import BestCheckpointSaver, IterationValidationHandler, loss_terms
from .losses import DMPLSLoss, PartialCrossEntropy, SupervisedSegLoss
from .resnet_unet import ResNet50UNet
from .round_logging import TrainStatsHandler, ValidationStatsHandler, ValidationTensorBoardHandler
from .trainer import RoundTrainer, default_handlers, train_round, train_volume_round
from .transforms import train_augmentation
from .unet import DualBranchUNet, UNet2D
from .unet3d import UNet3D

__all__ = [
    "BestCheckpointSaver",
    "DMPLSLoss",
    "DualBranchUNet",
    "IterationValidationHandler",
    "PartialCrossEntropy",
    "ResNet50UNet",
    "RoundTrainer",
    "SupervisedSegLoss",
    "TrainStatsHandler",
    "UNet2D",
    "UNet3D",
    "ValidationStatsHandler",
    "ValidationTensorBoardHandler",
    "default_handlers",
    "loss_terms",
    "train_augmentation",
    "train_round",
    "train_volume_round",
]
