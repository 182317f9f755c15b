"""Losses: CE + Dice on full masks, partial CE on scribbles, DMPLS with detached pseudo labels."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from alseg_monai.errors import DataError
from alseg_monai.segmentation import DMPLSLoss, PartialCrossEntropy, SupervisedSegLoss


def _soft_dice_loss(logits, target, eps=1e-5):
    """1 - mean over classes of batch-pooled soft Dice, written out by hand."""
    probs = torch.softmax(logits, 1)
    onehot = F.one_hot(target[:, 0], logits.shape[1]).permute(0, 3, 1, 2).float()
    inter = (probs * onehot).sum(dim=(0, 2, 3))
    denom = probs.sum(dim=(0, 2, 3)) + onehot.sum(dim=(0, 2, 3))
    return (1 - (2 * inter + eps) / (denom + eps)).mean()


def test_supervised_loss_is_half_ce_half_dice():
    torch.manual_seed(0)
    logits = torch.randn(3, 4, 8, 8)
    target = torch.randint(0, 4, (3, 1, 8, 8))
    expected = 0.5 * F.cross_entropy(logits, target[:, 0]) + 0.5 * _soft_dice_loss(logits, target)
    assert SupervisedSegLoss()(logits, target).item() == pytest.approx(expected.item(), rel=1e-5)


def test_supervised_loss_rejects_bad_targets():
    logits = torch.randn(2, 4, 8, 8)
    with pytest.raises(DataError, match=r"outside 0..3"):
        SupervisedSegLoss()(logits, torch.full((2, 1, 8, 8), 4))
    with pytest.raises(DataError, match=r"\(2, 1, 6, 6\)"):
        SupervisedSegLoss()(logits, torch.zeros(2, 1, 6, 6, dtype=torch.long))


def test_pce_is_ce_over_annotated_pixels():
    torch.manual_seed(1)
    logits = torch.randn(2, 4, 6, 6)
    target = torch.full((2, 1, 6, 6), 4)
    target[0, 0, 2, 1:5] = torch.tensor([0, 1, 2, 3])
    target[1, 0, 4, 0:2] = 3
    mask = target[:, 0] != 4
    per_pixel = -torch.log_softmax(logits, 1).gather(1, target.clamp(max=3)).squeeze(1)
    expected = per_pixel[mask].mean()
    assert PartialCrossEntropy(ignore_index=4)(logits, target).item() == pytest.approx(expected.item(), rel=1e-6)


def test_pce_ignores_unannotated_pixels():
    torch.manual_seed(2)
    target = torch.full((1, 1, 8, 8), 4)
    target[0, 0, 3, :] = torch.randint(0, 4, (8,))
    logits = torch.randn(1, 4, 8, 8, requires_grad=True)
    changed = logits.detach().clone()
    changed[..., :3, :] = torch.randn(1, 4, 3, 8) * 10  # only unannotated rows differ
    loss = PartialCrossEntropy(4)
    value = loss(logits, target)
    assert value.item() == pytest.approx(loss(changed, target).item(), rel=1e-6)
    value.backward()
    assert torch.all(logits.grad[..., :3, :] == 0) and logits.grad[..., 3, :].abs().sum() > 0


def test_pce_without_annotation_is_zero_with_a_warning():
    logits = torch.randn(2, 4, 5, 5, requires_grad=True)
    with pytest.warns(UserWarning, match="no annotated pixel"):
        value = PartialCrossEntropy(4)(logits, torch.full((2, 1, 5, 5), 4))
    assert value.item() == 0.0
    value.backward()  # still part of the graph
    assert torch.all(logits.grad == 0)


def test_pce_configurable_ignore_index():
    logits = torch.randn(1, 3, 4, 4)
    target = torch.full((1, 1, 4, 4), 255)
    target[0, 0, 0, 0] = 2
    expected = F.cross_entropy(logits[:, :, 0, 0], torch.tensor([2]))
    assert PartialCrossEntropy(ignore_index=255)(logits, target).item() == pytest.approx(expected.item(), rel=1e-6)
    with pytest.raises(DataError, match="255"):
        PartialCrossEntropy(ignore_index=4)(logits, target)


def _scribble(shape=(2, 1, 16, 16), seed=0):
    generator = torch.Generator().manual_seed(seed)
    target = torch.full(shape, 4)
    target[:, :, ::4, :] = torch.randint(0, 4, (shape[0], shape[1], (shape[2] + 3) // 4, shape[3]),
                                         generator=generator)
    return target


def test_dmpls_loss_is_finite_and_matches_its_definition():
    torch.manual_seed(3)
    main = torch.randn(2, 4, 16, 16, requires_grad=True)
    aux = torch.randn(2, 4, 16, 16, requires_grad=True)
    target = _scribble()
    loss = DMPLSLoss(ignore_index=4, seed=7)
    terms = loss.components(main, aux, target)
    assert torch.isfinite(terms["loss"])
    beta = float(torch.rand((), generator=torch.Generator().manual_seed(7)))
    assert terms["beta"].item() == pytest.approx(beta)
    label = (beta * torch.softmax(main, 1) + (1 - beta) * torch.softmax(aux, 1)).argmax(1, keepdim=True)
    pce = PartialCrossEntropy(4)
    expected = 0.5 * (pce(main, target) + pce(aux, target)) + 0.25 * (
        _soft_dice_loss(main, label) + _soft_dice_loss(aux, label))
    assert terms["loss"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_dmpls_pseudo_label_is_detached():
    torch.manual_seed(4)
    main = torch.randn(2, 4, 16, 16, requires_grad=True)
    aux = torch.randn(2, 4, 16, 16, requires_grad=True)
    target = _scribble()
    loss = DMPLSLoss(seed=0)
    label = loss.pseudo_label(main, aux, 0.3)
    assert not label.requires_grad and label.grad_fn is None
    loss((main, aux), target).backward()
    # the same gradient as with the pseudo label given as a constant
    beta = float(torch.rand((), generator=torch.Generator().manual_seed(0)))
    fixed = loss.pseudo_label(main, aux, beta)
    main2, aux2 = main.detach().clone().requires_grad_(), aux.detach().clone().requires_grad_()
    pce = PartialCrossEntropy(4)
    manual = 0.5 * (pce(main2, target) + pce(aux2, target)) + 0.25 * (
        _soft_dice_loss(main2, fixed) + _soft_dice_loss(aux2, fixed))
    manual.backward()
    assert torch.allclose(main.grad, main2.grad, atol=1e-6) and torch.allclose(aux.grad, aux2.grad, atol=1e-6)


def test_dmpls_mixing_weight_is_redrawn_and_seeded():
    main, aux, target = torch.randn(1, 4, 8, 8), torch.randn(1, 4, 8, 8), _scribble((1, 1, 8, 8))
    first = [DMPLSLoss(seed=11).components(main, aux, target)["beta"].item()]
    loss = DMPLSLoss(seed=11)
    betas = [loss.components(main, aux, target)["beta"].item() for _ in range(4)]
    assert betas[0] == first[0] and len(set(betas)) == 4 and all(0 <= b < 1 for b in betas)
    loss.reseed(11)
    assert loss.components(main, aux, target)["beta"].item() == betas[0]


def test_dmpls_loss_rejects_single_logits():
    with pytest.raises(DataError, match=r"\(main, aux\)"):
        DMPLSLoss()(torch.randn(1, 4, 8, 8), _scribble((1, 1, 8, 8)))
    with pytest.raises(DataError, match="differ"):
        DMPLSLoss().components(torch.randn(1, 4, 8, 8), torch.randn(1, 3, 8, 8), _scribble((1, 1, 8, 8)))
