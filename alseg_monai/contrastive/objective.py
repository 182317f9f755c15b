"""The contrastive objective of the paper's Eq. 5.

``L = l0 L_NT-Xent + l1 L_patient + l2 L_volume + l3 L_slice``, each term a
:class:`GroupNTXentLoss` with different group ids: NT-Xent uses every slice as its
own group (and its own patient, so the denominator is all other samples); the group
losses use the patient, volume or adjacent-slice group of each slice with the real
patient ids. Defaults are the paper's best ACDC setting (appendix A): (1, 0.10, 0.35, 0).
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError, DataError
from .loss import GroupNTXentLoss

__all__ = ["ContrastiveObjective"]

# Term names, as logged; the total is logged as "loss".
LOSS_TERMS = ("ntxent", "patient", "volume", "slice")


class ContrastiveObjective(nn.Module):
    """Weighted sum of NT-Xent and the patient, volume and adjacent-slice group losses (Eq. 5).

    Terms with weight 0 are not computed and not returned.

    Args:
        ntxent_weight: l0, the weight of plain NT-Xent.
        patient_weight: l1, the weight of the patient group loss.
        volume_weight: l2, the weight of the volume group loss.
        slice_weight: l3, the weight of the adjacent-slice group loss (needs a sampler
            with the ``"slice"`` grouping, see :func:`batch_group_ids`).
        temperature: tau of every term.
        symmetric: see :class:`GroupNTXentLoss`.

    Raises:
        ConfigError: a negative weight, or all weights zero.
    """

    def __init__(
        self,
        ntxent_weight: float = 1.0,
        patient_weight: float = 0.10,
        volume_weight: float = 0.35,
        slice_weight: float = 0.0,
        temperature: float = 0.5,
        symmetric: bool = True,
    ) -> None:
        super().__init__()
        weights = dict(zip(LOSS_TERMS, map(float, (ntxent_weight, patient_weight, volume_weight, slice_weight))))
        negative = {k: w for k, w in weights.items() if w < 0}
        if negative:
            raise ConfigError(f"ContrastiveObjective: loss weights must be >= 0, got {negative}")
        if not any(weights.values()):
            raise ConfigError("ContrastiveObjective: at least one loss weight must be > 0, all are 0")
        self.weights = weights
        self.loss = GroupNTXentLoss(temperature=temperature, symmetric=symmetric)

    @property
    def active_terms(self) -> tuple[str, ...]:
        """Names of the terms with a positive weight, in :data:`LOSS_TERMS` order."""
        return tuple(name for name in LOSS_TERMS if self.weights[name] > 0)

    def forward(
        self,
        z: torch.Tensor,
        z_aug: torch.Tensor,
        patient: torch.Tensor,
        volume: torch.Tensor,
        slice: torch.Tensor | None = None,  # noqa: A002 - named like the group it holds
    ) -> dict[str, torch.Tensor]:
        """
        Args:
            z: (N, F) projections of the first views.
            z_aug: (N, F) projections of the second views.
            patient: (N,) integer patient id of each slice.
            volume: (N,) integer volume id of each slice.
            slice: (N,) integer adjacent-slice group id; needed when ``slice_weight > 0``.
                :func:`batch_group_ids` returns all three under these names.

        Returns:
            ``{"loss": total, <term>: value for each active term}``, scalar tensors.

        Raises:
            DataError: ``slice`` is missing while the slice term is active, or shapes are wrong.
        """
        n = z.shape[0]
        own = torch.arange(n, device=z.device)
        groups = {"ntxent": own, "patient": patient, "volume": volume, "slice": slice}
        if self.weights["slice"] > 0 and slice is None:
            raise DataError("ContrastiveObjective: slice_weight > 0 needs the (N,) adjacent-slice group ids `slice`")
        terms: dict[str, torch.Tensor] = {}
        for name in self.active_terms:
            # NT-Xent treats every slice as its own patient: its denominator is all other samples.
            term_patients = own if name == "ntxent" else patient
            terms[name] = self.loss(z, z_aug, groups[name], term_patients)
        total = sum(self.weights[name] * value for name, value in terms.items())
        return {"loss": total, **terms}
