"""Group NT-Xent loss (paper Eq. 4).

The group contrastive loss of "Integrating Deep Metric Learning with Coreset for
Active Learning in 3D Segmentation" (NeurIPS 2024, Sec. 3.2.1, Eq. 4) generalises
NT-Xent (Chen et al., SimCLR, ICML 2020): every slice of the anchor's group is a
positive, and slices of the anchor's patient outside its group are left out of the
denominator, so several group losses can be summed without pulling against each other.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.nn.modules.loss import _Loss

from ..errors import ConfigError, DataError

__all__ = ["GroupNTXentLoss"]


def group_masks(groups: torch.Tensor, patients: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Positive and denominator masks of Eq. 4 over the 2N x 2N similarity matrix.

    Rows and columns index ``[standard views (N), augmented views (N)]``; sample ``k``
    of the second half is the view of slice ``k - N`` and shares its group and patient.

    Args:
        groups: (N,) integer group id of each slice.
        patients: (N,) integer patient id of each slice.

    Returns:
        ``(positive, allowed)``, both (2N, 2N) bool. ``positive[i, j]``: ``j`` is in the
        other half than ``i`` and in the same group (``i``'s own view included).
        ``allowed[i, k]``: ``k`` is in the denominator of anchor ``i``, i.e. ``k != i``
        and (``k`` in ``i``'s group or ``k`` of another patient).
    """
    n = groups.shape[0]
    g2 = torch.cat([groups, groups])
    p2 = torch.cat([patients, patients])
    same_group = g2[:, None] == g2[None, :]
    same_patient = p2[:, None] == p2[None, :]
    half = torch.arange(2 * n, device=groups.device) >= n
    other_half = half[:, None] != half[None, :]
    not_self = ~torch.eye(2 * n, dtype=torch.bool, device=groups.device)
    positive = same_group & other_half
    allowed = not_self & (same_group | ~same_patient)
    return positive, allowed


class GroupNTXentLoss(_Loss):
    """Group contrastive loss of the paper's Eq. 4.

    For anchor ``i`` in the standard half, the positives are the augmented views ``j``
    of every slice with ``g_j = g_i`` (its own view included); the denominator runs
    over all ``k != i`` of the 2N samples except slices of ``i``'s patient outside
    ``i``'s group; similarities are cosine similarities divided by ``temperature``.
    The loss is the mean of ``-log(exp(s_ij) / sum_k exp(s_ik))`` over all (anchor,
    positive) pairs, computed with log-sum-exp so it stays finite at low temperatures.

    With ``groups = patients = arange(N)`` this is NT-Xent, equal to
    ``monai.losses.ContrastiveLoss(temperature)`` when ``symmetric=True``.

    Args:
        temperature: tau of Eq. 4 (0.5 in the paper's code).
        symmetric: also take the augmented half as anchors (positives in the standard
            half) and average the two directions, as SimCLR and MONAI do. ``False``
            is the literal Eq. 4 (standard-half anchors only).

    Raises:
        ConfigError: ``temperature`` is not positive.
    """

    def __init__(self, temperature: float = 0.5, symmetric: bool = True) -> None:
        super().__init__()
        if not temperature > 0:
            raise ConfigError(f"GroupNTXentLoss: temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)
        self.symmetric = bool(symmetric)

    def forward(
        self, z: torch.Tensor, z_aug: torch.Tensor, groups: torch.Tensor, patients: torch.Tensor
    ) -> torch.Tensor:
        """
        Args:
            z: (N, F) projections of the standard views.
            z_aug: (N, F) projections of the augmented views, row ``i`` the view of ``z[i]``.
            groups: (N,) integer group id of each slice.
            patients: (N,) integer patient id of each slice.

        Returns:
            scalar loss tensor.

        Raises:
            DataError: on shapes other than the above.
        """
        _check_inputs(z, z_aug, groups, patients)
        n = z.shape[0]
        groups = groups.to(device=z.device)
        patients = patients.to(device=z.device)
        reps = torch.cat([z, z_aug])
        if reps.dtype in (torch.float16, torch.bfloat16):
            # exp/log-sum-exp of similarities / tau need more range than half precision.
            reps = reps.float()
        reps = F.normalize(reps, dim=1)
        sim = reps @ reps.T / self.temperature
        positive, allowed = group_masks(groups, patients)
        log_denominator = torch.logsumexp(sim.masked_fill(~allowed, float("-inf")), dim=1)
        # -log softmax of every (anchor, positive) pair; other entries are zeroed by the mask.
        pair_loss = (log_denominator[:, None] - sim) * positive
        standard = pair_loss[:n].sum() / positive[:n].sum()
        if not self.symmetric:
            return standard
        augmented = pair_loss[n:].sum() / positive[n:].sum()
        return 0.5 * (standard + augmented)


def _check_inputs(z: torch.Tensor, z_aug: torch.Tensor, groups: torch.Tensor, patients: torch.Tensor) -> None:
    if z.ndim != 2 or z.shape != z_aug.shape or z.shape[0] < 1:
        raise DataError(
            f"GroupNTXentLoss: z and z_aug must both have shape (N, F) with N >= 1, "
            f"got z {tuple(z.shape)} and z_aug {tuple(z_aug.shape)}"
        )
    n = z.shape[0]
    for name, ids in (("groups", groups), ("patients", patients)):
        if ids.shape != (n,):
            raise DataError(
                f"GroupNTXentLoss: {name} must have shape ({n},) to match z {tuple(z.shape)}, got {tuple(ids.shape)}"
            )
        if ids.is_floating_point() or ids.is_complex():
            raise DataError(f"GroupNTXentLoss: {name} must be an integer tensor, got {ids.dtype}")
