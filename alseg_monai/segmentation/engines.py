"""Engine factories of a segmentation round: a MONAI ``SupervisedTrainer`` and a
``SupervisedEvaluator`` that scores whole validation volumes (paper Section 3.2.2).

- :func:`create_trainer`: an optimizer and a learning-rate schedule stepped every
  iteration (default the paper's SGD, lr 0.01, momentum 0.9, weight decay 1e-4, with
  poly decay, power 0.9), for exactly ``iterations`` iterations. The iteration is MONAI's default for full
  masks and :class:`DMPLSOutputHandler` for a :class:`~.losses.DMPLSLoss`.
- :func:`create_evaluator`: one iteration per volume: predict it (slice by slice for
  2D networks), resize to its stored size, 3D Dice per class; the key metric
  ``val_mean_dice`` is the mean over classes, then volumes.

Mixed precision: on CUDA by default (float16 autocast with a gradient scaler, MONAI's
own path); on CPU when asked (``amp=True``: bfloat16 autocast through
:class:`AutocastInferer`, about 1.5x faster per iteration on CPUs with AMX, and
channels-last weights). Evaluation always runs in float32.

Distributed (``torchrun``): the trainer's network is a ``DistributedDataParallel``
wrapper and its loader draws from a ``DistributedSampler`` (reshuffled at every data
pass); the evaluator scores a contiguous share of the volumes on each rank with rank 0's
model, and ignite's ``Average`` sums over ranks, so every rank sees the same
``val_mean_dice``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import torch
from ignite.metrics import Average
from monai.engines import SupervisedEvaluator, SupervisedTrainer
from monai.engines.utils import IterationEvents, PrepareBatch
from monai.handlers import LrScheduleHandler
from monai.inferers import Inferer, SimpleInferer
from monai.utils import CommonKeys as Keys
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, Subset

from ..errors import ConfigError, DataError
from ..evaluation import predict, volume_dice
from ..evaluation.dice import mean_over_classes
from ..utils import shard_indices, unwrap_model, world_size
from ..utils.flags import as_bool
from .handlers import VAL_METRIC, BroadcastModelHandler, ReshuffleHandler
from .losses import DMPLSLoss

__all__ = []


class SegmentationPrepareBatch(PrepareBatch):
    """Take ``image`` and the target ``label_key`` (``label`` or ``scribble``) of a batch
    to the device; channels-last for 2D batches on CUDA.

    Raises:
        DataError: a batch without ``image`` or ``label_key``.
    """

    def __init__(self, label_key: str = "label", image_key: str = "image") -> None:
        self.label_key, self.image_key = label_key, image_key

    def __call__(self, batchdata: dict, device: str | torch.device | None = None, non_blocking: bool = False,
                 **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        missing = [k for k in (self.image_key, self.label_key) if k not in batchdata]
        if missing:
            raise DataError(f"training batch: missing keys {missing} (has {sorted(batchdata)})")
        image = torch.as_tensor(batchdata[self.image_key]).to(device=device, non_blocking=non_blocking, **kwargs)
        target = torch.as_tensor(batchdata[self.label_key]).to(device=device, non_blocking=non_blocking, **kwargs)
        if image.ndim == 4 and image.device.type == "cuda":
            image = image.contiguous(memory_format=torch.channels_last)
        return image, target


class AutocastInferer(Inferer):
    """Call the network under ``torch.autocast(device_type, dtype)``; outputs come back
    in float32, so the loss is computed in full precision.

    Kept here because MONAI's ``SupervisedTrainer`` autocasts on CUDA only; this brings
    bfloat16 mixed precision to CPU training. Shapes: as the network's (a tensor, or a
    tuple of tensors such as DMPLS's (main, aux) logits).
    """

    def __init__(self, device_type: str = "cpu", dtype: torch.dtype = torch.bfloat16) -> None:
        super().__init__()
        self.device_type, self.dtype = device_type, dtype

    def __call__(self, inputs: torch.Tensor, network: nn.Module, *args: Any, **kwargs: Any):
        with torch.autocast(self.device_type, dtype=self.dtype):
            outputs = network(inputs, *args, **kwargs)
        if isinstance(outputs, (tuple, list)):
            return type(outputs)(o.float() for o in outputs)
        return outputs.float()


def resolve_amp(amp: bool | None, device: str | torch.device) -> bool:
    """Whether a round trains in mixed precision: ``None`` means on CUDA only.

    Raises:
        ConfigError: ``amp`` is neither None nor a boolean.
    """
    return torch.device(device).type == "cuda" if amp is None else as_bool(amp, "amp")


class DMPLSOutputHandler:
    """Adapts MONAI's own SupervisedTrainer iteration to the DMPLS dual-branch network.

    The stock iteration already gives :class:`DMPLSLoss` the (main, aux) pair the network
    returns in train mode. After the loss (``LOSS_COMPLETED``) this handler keeps only the
    main logits as ``pred``, like a single-branch network, and adds the loss terms
    ``pce``, ``pseudo_dice`` and ``beta`` to the output for logging.
    """

    def attach(self, engine: SupervisedTrainer) -> None:
        if not isinstance(engine.loss_function, DMPLSLoss):
            raise ConfigError("DMPLSOutputHandler: the trainer's loss_function must be a DMPLSLoss, "
                              f"got {type(engine.loss_function).__name__}")
        engine.add_event_handler(IterationEvents.LOSS_COMPLETED, self)

    def __call__(self, engine: SupervisedTrainer) -> None:
        output = engine.state.output
        output[Keys.PRED] = output[Keys.PRED][0]
        output.update(engine.loss_function.last_terms)


class VolumeValidationIteration:
    """``iteration_update`` of the validator: score one whole volume.

    The batch is one ``VolumeDataset`` item (``image`` (C, S, S, D), ``spatial_shape``,
    ``label_original`` (H, W, D), ``id``). Output: ``dice`` (mean over classes),
    ``scores`` (K - 1,) and ``id``.
    """

    def __init__(self, num_classes: int, convention: str = "paper", batch_size: int = 32) -> None:
        self.num_classes, self.convention, self.batch_size = num_classes, convention, batch_size

    def __call__(self, engine: SupervisedEvaluator, item: dict) -> dict:
        missing = [k for k in ("image", "spatial_shape", "label_original") if k not in item]
        if missing:
            raise DataError(f"validation volume {item.get('id', '?')}: missing keys {missing}")
        pred = predict(engine.network, item["image"], item["spatial_shape"], batch_size=self.batch_size)
        scores = volume_dice(pred, item["label_original"], self.num_classes, convention=self.convention)
        engine.state.output = {"dice": float(mean_over_classes(scores)), "scores": scores, "id": item.get("id")}
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return engine.state.output


def _keep_item(item: Any) -> Any:
    # Volumes differ in depth and carry strings and affines: pass each through whole.
    return item


def create_trainer(
    network: nn.Module,
    train_loader: DataLoader,
    loss_function: nn.Module,
    iterations: int,
    device: str | torch.device = "cpu",
    label_key: str = "label",
    optimizer: Callable[..., torch.optim.Optimizer] | None = None,
    lr_scheduler: Callable[..., Any] | None = None,
    handlers: Sequence = (),
    amp: bool | None = None,
) -> SupervisedTrainer:
    """A SupervisedTrainer running ``iterations`` iterations (one epoch of that length).

    Args:
        network: the network (already on ``device``); in a distributed run wrapped with
            :func:`~alseg_monai.utils.ddp_wrap`.
        train_loader: batches of ``{"image", label_key}``; a ``DistributedSampler`` in it
            gets a :class:`~.handlers.ReshuffleHandler`.
        loss_function: e.g. MONAI ``DiceCELoss``, or :class:`~.losses.DMPLSLoss` (then the
            iteration is :class:`DMPLSOutputHandler`).
        iterations: total iterations; the data loader restarts as often as needed.
        device: where to train.
        label_key: the target key of the batches.
        optimizer: ``optimizer(parameters)``; None: the paper's SGD (lr 0.01, momentum
            0.9, weight decay 1e-4).
        lr_scheduler: ``lr_scheduler(optimizer, total_iters=iterations)``, stepped every
            iteration by a MONAI ``LrScheduleHandler``; None: the paper's poly decay
            ``lr (1 - t / T) ** 0.9`` (torch ``PolynomialLR``).
        handlers: further handlers to attach.
        amp: mixed precision (see :func:`resolve_amp`): float16 on CUDA, bfloat16 on CPU.

    Raises:
        ConfigError: non-positive iterations.
    """
    if int(iterations) < 1:
        raise ConfigError(f"iterations: expected a positive number, got {iterations}")
    device = torch.device(device)
    amp = resolve_amp(amp, device)
    optimizer = (optimizer or _PAPER_SGD)(network.parameters())
    scheduler = (lr_scheduler or _PAPER_POLY)(optimizer, total_iters=int(iterations))
    if isinstance(train_loader.sampler, DistributedSampler):
        handlers = [ReshuffleHandler(train_loader.sampler), *handlers]
    trainer = SupervisedTrainer(
        device=device, max_epochs=1, epoch_length=int(iterations), train_data_loader=train_loader,
        network=network, optimizer=optimizer, loss_function=loss_function,
        prepare_batch=SegmentationPrepareBatch(label_key),
        train_handlers=[LrScheduleHandler(scheduler, print_lr=False, epoch_level=False), *handlers],
        inferer=AutocastInferer() if amp and device.type != "cuda" else SimpleInferer(),
        amp=amp and device.type == "cuda", decollate=False, optim_set_to_none=True,
    )
    if isinstance(loss_function, DMPLSLoss):
        # after construction: MONAI attaches train_handlers before it sets loss_function
        DMPLSOutputHandler().attach(trainer)
    return trainer


_PAPER_SGD = functools.partial(torch.optim.SGD, lr=0.01, momentum=0.9, weight_decay=1e-4)
_PAPER_POLY = functools.partial(torch.optim.lr_scheduler.PolynomialLR, power=0.9)


def create_evaluator(
    network: nn.Module,
    val_dataset: Sequence[dict],
    num_classes: int,
    device: str | torch.device = "cpu",
    convention: str = "paper",
    batch_size: int = 32,
    handlers: Sequence = (),
) -> SupervisedEvaluator:
    """A SupervisedEvaluator whose key metric ``val_mean_dice`` is the mean 3D Dice over volumes.

    Args:
        network: the network being trained (evaluated in eval mode, then restored; a
            ``DistributedDataParallel`` wrapper is looked through).
        val_dataset: ``VolumeDataset``-like items, one volume each. Distributed: each rank
            scores a contiguous share (every volume when there are fewer volumes than
            ranks, which leaves the mean unchanged), after a
            :class:`~.handlers.BroadcastModelHandler` gave it rank 0's model.
        num_classes: K, background included.
        device: the network's device.
        convention: empty-class convention of :func:`~alseg_monai.evaluation.volume_dice`
            ("paper" never gives NaN, so the metric is always comparable).
        batch_size: slices per forward pass.
        handlers: further handlers to attach.

    Raises:
        DataError: an empty validation set.
    """
    if len(val_dataset) == 0:
        raise DataError("val_dataset: no validation volume; the best model cannot be chosen")
    network = unwrap_model(network)
    loader = DataLoader(_validation_share(val_dataset), batch_size=None, shuffle=False, collate_fn=_keep_item)
    return SupervisedEvaluator(
        device=torch.device(device), val_data_loader=loader, network=network,
        iteration_update=VolumeValidationIteration(num_classes, convention, batch_size),
        key_val_metric={VAL_METRIC: Average(output_transform=lambda out: out["dice"])},
        val_handlers=[BroadcastModelHandler(network), *handlers], decollate=False,
    )


def _validation_share(val_dataset: Sequence[dict]) -> Sequence[dict]:
    # ignite cannot run an engine on an empty loader: with fewer volumes than ranks every
    # rank scores them all, and Average's sum and count both grow by the world size.
    if world_size() == 1 or len(val_dataset) < world_size():
        return val_dataset
    return Subset(val_dataset, shard_indices(len(val_dataset)).tolist())
