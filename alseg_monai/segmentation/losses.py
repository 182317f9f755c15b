"""Per-round training losses (paper Section 3.2.2).

- :class:`SupervisedSegLoss`: full masks, 0.5 cross-entropy + 0.5 soft Dice (the
  WSL4MIS UNet baseline), through MONAI's :class:`~monai.losses.DiceCELoss`.
- :class:`PartialCrossEntropy`: cross-entropy over annotated (scribbled) pixels only.
- :class:`DMPLSLoss`: Dynamically Mixed Pseudo Labels Supervision (Luo et al., MICCAI
  2022), the paper's scribble loss:
  ``0.5 (pCE(main) + pCE(aux)) + 0.5 * 0.5 (Dice(main, PL) + Dice(aux, PL))`` with
  ``PL = argmax(b softmax(main) + (1 - b) softmax(aux))``, detached, and
  ``b ~ U(0, 1)`` drawn once per call from the loss's own seeded generator.

Shapes: logits (B, K, *spatial); targets (B, 1, *spatial) or (B, *spatial) int64
class maps (K classes; scribbles use ``ignore_index`` for unannotated pixels).
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from monai.losses import DiceCELoss, DiceLoss
from torch import nn

from ..errors import ConfigError, DataError

__all__ = ["DMPLSLoss", "PartialCrossEntropy", "SupervisedSegLoss"]


def _as_class_map(logits: torch.Tensor, target: torch.Tensor, name: str) -> torch.Tensor:
    """Check (B, K, *S) logits against a (B, 1, *S) or (B, *S) target; return the (B, *S) int64 target."""
    if logits.ndim < 3:
        raise DataError(f"{name}: expected (B, K, *spatial) logits, got shape {tuple(logits.shape)}")
    given = tuple(target.shape)
    if target.ndim == logits.ndim and target.shape[1] == 1:
        target = target[:, 0]
    if target.shape != logits.shape[:1] + logits.shape[2:]:
        raise DataError(f"{name}: target shape {given} does not match logits {tuple(logits.shape)} "
                        "(expected (B, 1, *spatial) or (B, *spatial))")
    if target.is_floating_point():
        target = target.round()
    return target.long()


def _check_range(target: torch.Tensor, num_classes: int, ignore_index: int | None, name: str) -> None:
    valid = (target >= 0) & (target < num_classes)
    if ignore_index is not None:
        valid |= target == ignore_index
    if not bool(valid.all()):
        bad = torch.unique(target[~valid])[:5].tolist()
        allowed = f"0..{num_classes - 1}" + ("" if ignore_index is None else f" or {ignore_index} (unannotated)")
        raise DataError(f"{name}: target values {bad} outside {allowed}")


class SupervisedSegLoss(nn.Module):
    """Full-mask loss ``lambda_ce * CE + lambda_dice * Dice`` (paper: 0.5 / 0.5).

    Softmax Dice with background included, classes pooled over the batch (as the
    WSL4MIS baseline computes it), via MONAI :class:`~monai.losses.DiceCELoss`.

    Args:
        lambda_ce: weight of the cross-entropy term.
        lambda_dice: weight of the Dice term.
        batch: pool each class's Dice over the whole batch (stable when a class is
            absent from some slices).

    Shapes: ``forward(logits (B, K, *S), target (B, 1, *S) int64) -> scalar``.

    Raises:
        DataError: mismatched shapes or target values outside 0..K-1.
    """

    def __init__(self, lambda_ce: float = 0.5, lambda_dice: float = 0.5, batch: bool = True) -> None:
        super().__init__()
        if lambda_ce < 0 or lambda_dice < 0 or lambda_ce + lambda_dice == 0:
            raise ConfigError(f"lambda_ce / lambda_dice: expected non-negative weights, not both 0; "
                              f"got {lambda_ce}, {lambda_dice}")
        self.loss = DiceCELoss(to_onehot_y=True, softmax=True, batch=batch, lambda_ce=lambda_ce,
                               lambda_dice=lambda_dice)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        target = _as_class_map(logits, target, "SupervisedSegLoss")
        _check_range(target, logits.shape[1], None, "SupervisedSegLoss")
        return self.loss(logits, target.unsqueeze(1))


class PartialCrossEntropy(nn.Module):
    """Partial cross-entropy: mean CE over annotated pixels only (scribble supervision).

    Pixels equal to ``ignore_index`` contribute nothing, so the loss does not depend
    on them. A batch without any annotated pixel has no defined mean; it gives 0
    (still connected to the graph, so backward works) and a warning, not NaN.

    Args:
        ignore_index: the "unannotated" value of scribble maps (4 for ACDC).

    Shapes: ``forward(logits (B, K, *S), target (B, 1, *S) or (B, *S)) -> scalar``.

    Raises:
        DataError: mismatched shapes or target values other than 0..K-1 and ``ignore_index``.
    """

    def __init__(self, ignore_index: int = 4) -> None:
        super().__init__()
        self.ignore_index = int(ignore_index)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        target = _as_class_map(logits, target, "PartialCrossEntropy")
        _check_range(target, logits.shape[1], self.ignore_index, "PartialCrossEntropy")
        annotated = int((target != self.ignore_index).sum())
        if annotated == 0:
            warnings.warn("PartialCrossEntropy: no annotated pixel in the batch; the loss is 0", stacklevel=2)
            return logits.sum() * 0.0
        total = F.cross_entropy(logits.float(), target, ignore_index=self.ignore_index, reduction="sum")
        return total / annotated


class DMPLSLoss(nn.Module):
    """DMPLS scribble loss (Luo et al., MICCAI 2022; paper Section 3.2.2).

    ``pce_weight (pCE(main) + pCE(aux)) + pseudo_weight * 0.5 (Dice(main, PL) + Dice(aux, PL))``,
    ``PL = argmax(b softmax(main) + (1 - b) softmax(aux))`` computed without gradient,
    ``b ~ U(0, 1)`` drawn at every call from a generator seeded with ``seed``.

    Args:
        ignore_index: the "unannotated" scribble value.
        pce_weight: weight of the partial cross-entropy pair (paper 0.5).
        pseudo_weight: weight of the pseudo-label Dice pair (paper 0.5).
        seed: seed of the generator of ``b``.

    Shapes: ``forward((main, aux) each (B, K, *S), scribble (B, 1, *S)) -> scalar``;
    :meth:`components` returns the terms too, and :attr:`last_terms` keeps the detached
    terms of the latest ``forward`` for logging (see :class:`~.engines.DMPLSOutputHandler`).

    Raises:
        DataError: mismatched shapes, or ``pred`` not a (main, aux) pair.
    """

    def __init__(self, ignore_index: int = 4, pce_weight: float = 0.5, pseudo_weight: float = 0.5,
                 seed: int = 0) -> None:
        super().__init__()
        if pce_weight < 0 or pseudo_weight < 0:
            raise ConfigError(f"pce_weight / pseudo_weight: expected non-negative, got {pce_weight}, {pseudo_weight}")
        self.pce = PartialCrossEntropy(ignore_index)
        self.dice = DiceLoss(to_onehot_y=True, softmax=True, batch=True)
        self.pce_weight, self.pseudo_weight = pce_weight, pseudo_weight
        self.generator = torch.Generator().manual_seed(int(seed))
        self.last_terms: dict[str, torch.Tensor] = {}

    def reseed(self, seed: int) -> None:
        """Restart the stream of mixing weights ``b`` from ``seed``."""
        self.generator.manual_seed(int(seed))

    def pseudo_label(self, main: torch.Tensor, aux: torch.Tensor, beta: float) -> torch.Tensor:
        """The dynamically mixed pseudo label, (B, 1, *S) int64, with no gradient."""
        with torch.no_grad():
            main_p, aux_p = torch.softmax(main.detach().float(), 1), torch.softmax(aux.detach().float(), 1)
            return (beta * main_p + (1.0 - beta) * aux_p).argmax(dim=1, keepdim=True)

    def components(self, main: torch.Tensor, aux: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """All terms: ``loss``, ``pce`` (sum of both branches), ``pseudo_dice`` (mean of both) and ``beta``."""
        if main.shape != aux.shape:
            raise DataError(f"DMPLSLoss: main logits {tuple(main.shape)} and aux logits {tuple(aux.shape)} differ")
        beta = float(torch.rand((), generator=self.generator))
        pce = self.pce(main, target) + self.pce(aux, target)
        label = self.pseudo_label(main, aux, beta)
        pseudo_dice = 0.5 * (self.dice(main, label) + self.dice(aux, label))
        loss = self.pce_weight * pce + self.pseudo_weight * pseudo_dice
        return {"loss": loss, "pce": pce.detach(), "pseudo_dice": pseudo_dice.detach(),
                "beta": torch.tensor(beta)}

    def forward(self, pred: tuple[torch.Tensor, torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        if not isinstance(pred, (tuple, list)) or len(pred) != 2:
            raise DataError("DMPLSLoss: expected pred = (main, aux) logits from a DualBranchUNet in train mode, "
                            f"got {type(pred).__name__}")
        terms = self.components(pred[0], pred[1], target)
        self.last_terms = {k: v for k, v in terms.items() if k != "loss"}
        return terms["loss"]
