"""Per-round segmentation: networks, losses, ignite engines and handlers, volume inference."""

from __future__ import annotations

# inference before engines: evaluation.volumes imports it while this package initialises.
from .inference import predict, predict_volume, predict_volume_3d, resize_slices_nearest, save_prediction_nifti
from .losses import DMPLSLoss, PartialCrossEntropy, SupervisedSegLoss
from .resnet_unet import ResNet50UNet, load_pretrained_weights
from .unet import ConvBlock, DualBranchUNet, UNet2D, UNetDecoder, UNetEncoder
from .unet3d import UNet3D
from .networks import NETWORKS, get_network
from .transforms import train_augmentation
from .handlers import (
    AtomicDiskSaver,
    BestCheckpointSaver,
    BroadcastModelHandler,
    IterationValidationHandler,
    ReshuffleHandler,
    RestoreBestHandler,
    attach_logging,
    loss_terms,
    poly_lr_handler,
)
from .engines import (
    DMPLSIteration,
    SegmentationPrepareBatch,
    VolumeValidationIteration,
    create_evaluator,
    create_trainer,
)
from .trainer import (
    DEFAULT_BATCH_SIZE,
    RoundResult,
    create_train_loader,
    iterations_for,
    train_round,
    train_volume_round,
)

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "NETWORKS",
    "AtomicDiskSaver",
    "BestCheckpointSaver",
    "BroadcastModelHandler",
    "ConvBlock",
    "DMPLSIteration",
    "DMPLSLoss",
    "DualBranchUNet",
    "IterationValidationHandler",
    "PartialCrossEntropy",
    "ResNet50UNet",
    "ReshuffleHandler",
    "RestoreBestHandler",
    "RoundResult",
    "SegmentationPrepareBatch",
    "SupervisedSegLoss",
    "UNet2D",
    "UNet3D",
    "UNetDecoder",
    "UNetEncoder",
    "VolumeValidationIteration",
    "attach_logging",
    "create_evaluator",
    "create_train_loader",
    "create_trainer",
    "get_network",
    "iterations_for",
    "load_pretrained_weights",
    "loss_terms",
    "poly_lr_handler",
    "predict",
    "predict_volume",
    "predict_volume_3d",
    "resize_slices_nearest",
    "save_prediction_nifti",
    "train_augmentation",
    "train_round",
    "train_volume_round",
]
