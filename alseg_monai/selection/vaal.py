"""VAAL (Sinha, Ebrahimi and Darrell, "Variational Adversarial Active Learning", ICCV
2019): the paper's "VAAL" baseline.

A beta-VAE learns a latent space of all slices while a discriminator on the latent mean
learns to tell labelled (target 1) from unlabelled (target 0) slices, and the VAE is
trained adversarially to make every slice look labelled. The unlabelled slices the
discriminator is most sure are unlabelled (lowest output) are selected. (The original
active-learning code trained the discriminator with unlabelled -> 1, inverting the
ranking; :func:`discriminator_loss` fixes the targets and a test guards them.)
Architecture and settings follow the published code: encoder convolutions 128-256-512-
1024 (4x4, stride 2, BatchNorm, ReLU), latent 32, discriminator MLP 512-512, Adam 5e-4,
batch 128, beta 1, adversary weight 1, 2 VAE steps and 1 discriminator step per
iteration, (pool size x epochs / batch) iterations. One change: the discriminator
learns on latent means computed with the VAE's BatchNorm in eval mode, the same means
it scores at selection time (the published code used the batch statistics of
all-labelled and all-unlabelled batches there, which tell the two sets apart by
themselves and made the ranking erratic in our tests).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, DataError
from .base import SelectionContext, Strategy, non_negative_float, positive_int, random_rows
from .inference import eval_mode, iterate_batches, seeded
from .registry import register_strategy
from .resources import resolve_device

__all__ = ["VAALStrategy"]

logger = logging.getLogger(__name__)


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.kaiming_normal_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class VAAL(nn.Module):
    """The beta-VAE of VAAL for (B, C, S, S) slices, S divisible by 2**len(channels).

    ``forward`` returns ``(reconstruction (B, C, S, S), z (B, latent), mu, logvar)``.
    The encoder halves the size ``len(channels)`` times; the decoder starts at twice the
    encoder's last size and mirrors the widths, ending with a 1x1 convolution (as published).
    """

    def __init__(
        self, in_channels: int, image_size: int, latent_dim: int = 32, channels: Sequence[int] = (128, 256, 512, 1024)
    ) -> None:
        super().__init__()
        channels = tuple(int(c) for c in channels)
        levels = len(channels)
        if levels < 1 or image_size % (2**levels) or image_size < 2**levels:
            raise ConfigError(
                f"vaal: image size {image_size} must be a positive multiple of 2**{levels} for channels {channels}; "
                "set vaal.image_size"
            )
        self.image_size, self.latent_dim = image_size, latent_dim
        layers: list[nn.Module] = []
        width = in_channels
        for out in channels:
            layers += [nn.Conv2d(width, out, 4, 2, 1, bias=False), nn.BatchNorm2d(out), nn.ReLU(True)]
            width = out
        self.encoder = nn.Sequential(*layers, nn.Flatten())
        flat = channels[-1] * (image_size // 2**levels) ** 2
        self.fc_mu, self.fc_logvar = nn.Linear(flat, latent_dim), nn.Linear(flat, latent_dim)
        self.start = image_size // 2 ** (levels - 1)
        decoder: list[nn.Module] = [
            nn.Linear(latent_dim, channels[-1] * self.start**2),
            nn.Unflatten(1, (channels[-1], self.start, self.start)),
        ]
        for width, out in zip(channels[::-1], channels[::-1][1:]):
            decoder += [nn.ConvTranspose2d(width, out, 4, 2, 1, bias=False), nn.BatchNorm2d(out), nn.ReLU(True)]
        decoder.append(nn.ConvTranspose2d(channels[0], in_channels, 1))
        self.decoder = nn.Sequential(*decoder)
        self.apply(_init_weights)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C, S, S) -> (mu, logvar), each (B, latent_dim)."""
        if x.ndim != 4 or x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
            raise DataError(f"vaal: expected (B, C, {self.image_size}, {self.image_size}) slices, got {tuple(x.shape)}")
        hidden = self.encoder(x)
        return self.fc_mu(hidden), self.fc_logvar(hidden)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return self.decoder(z), z, mu, logvar


class VAALDiscriminator(nn.Module):
    """MLP latent (B, latent_dim) -> (B,) logits of "labelled"."""

    def __init__(self, latent_dim: int = 32, hidden: int = 512) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(latent_dim, hidden), nn.ReLU(True), nn.Linear(hidden, hidden), nn.ReLU(True), nn.Linear(hidden, 1)
        )
        self.apply(_init_weights)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)[:, 0]


def vae_loss(x: torch.Tensor, recon: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, beta: float) -> torch.Tensor:
    """Mean squared reconstruction error + beta x KL divergence summed over the batch (as published)."""
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return F.mse_loss(recon, x) + beta * kld


def discriminator_loss(labelled_logits: torch.Tensor, unlabelled_logits: torch.Tensor) -> torch.Tensor:
    """BCE of the discriminator with labelled -> 1 and unlabelled -> 0."""
    return F.binary_cross_entropy_with_logits(
        labelled_logits, torch.ones_like(labelled_logits)
    ) + F.binary_cross_entropy_with_logits(unlabelled_logits, torch.zeros_like(unlabelled_logits))


def _adversarial_loss(labelled_logits: torch.Tensor, unlabelled_logits: torch.Tensor) -> torch.Tensor:
    # The VAE wins when the discriminator calls every slice labelled.
    return F.binary_cross_entropy_with_logits(
        labelled_logits, torch.ones_like(labelled_logits)
    ) + F.binary_cross_entropy_with_logits(unlabelled_logits, torch.ones_like(unlabelled_logits))


def _cycle(rows: np.ndarray, batch_size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Endless shuffled full batches of ``rows`` (reshuffled each pass, wrapping around)."""
    size = min(batch_size, len(rows))
    order, position = rng.permutation(rows), 0
    while True:
        if position + size > len(order):
            order, position = np.concatenate([order[position:], rng.permutation(rows)]), 0
        yield order[position : position + size]
        position += size


def _batch(images: np.ndarray, rows: np.ndarray, image_size: int, device: torch.device) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(images[np.sort(rows)])).to(device=device, dtype=torch.float32)
    return _resize(x, image_size)


def _resize(x: torch.Tensor, image_size: int) -> torch.Tensor:
    if x.shape[-1] == image_size and x.shape[-2] == image_size:
        return x
    return F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False)


def train_vaal(
    images: np.ndarray,
    labelled: np.ndarray,
    unlabelled: np.ndarray,
    iterations: int,
    seed: int = 0,
    device: torch.device | str = "cpu",
    image_size: int | None = None,
    latent_dim: int = 32,
    channels: Sequence[int] = (128, 256, 512, 1024),
    batch_size: int = 128,
    lr: float = 5e-4,
    beta: float = 1.0,
    adversary_weight: float = 1.0,
    num_vae_steps: int = 2,
    num_adv_steps: int = 1,
) -> tuple[VAAL, VAALDiscriminator]:
    """Train VAAL's VAE and discriminator on (N, C, H, W) ``images`` for ``iterations``
    iterations of ``num_vae_steps`` VAE and ``num_adv_steps`` discriminator updates, each
    on a labelled and an unlabelled batch. Deterministic given ``seed`` (the global torch
    RNG is left as it was)."""
    device = torch.device(device)
    size = image_size or images.shape[-1]
    rng = np.random.default_rng(seed)
    labelled_batches, unlabelled_batches = _cycle(labelled, batch_size, rng), _cycle(unlabelled, batch_size, rng)
    with seeded(seed, device):
        vae = VAAL(images.shape[1], size, latent_dim, channels).to(device)
        discriminator = VAALDiscriminator(latent_dim).to(device)
        vae_optimizer = torch.optim.Adam(vae.parameters(), lr=lr)
        disc_optimizer = torch.optim.Adam(discriminator.parameters(), lr=lr)
        vae.train()
        discriminator.train()

        def draw() -> tuple[torch.Tensor, torch.Tensor]:
            return (
                _batch(images, next(labelled_batches), size, device),
                _batch(images, next(unlabelled_batches), size, device),
            )

        for _ in range(iterations):
            x_l, x_u = draw()
            for step in range(num_vae_steps):
                recon_l, _, mu_l, logvar_l = vae(x_l)
                recon_u, _, mu_u, logvar_u = vae(x_u)
                loss = vae_loss(x_l, recon_l, mu_l, logvar_l, beta) + vae_loss(x_u, recon_u, mu_u, logvar_u, beta)
                loss = loss + adversary_weight * _adversarial_loss(discriminator(mu_l), discriminator(mu_u))
                vae_optimizer.zero_grad()
                loss.backward()
                vae_optimizer.step()
                if step < num_vae_steps - 1:
                    x_l, x_u = draw()
            for step in range(num_adv_steps):
                # The discriminator learns on the latent means it will score at selection
                # time (eval-mode BatchNorm); batch statistics of all-labelled versus
                # mostly unlabelled batches would otherwise leak the answer.
                with eval_mode(vae):
                    mu_l, mu_u = vae.encode(x_l)[0], vae.encode(x_u)[0]
                loss = discriminator_loss(discriminator(mu_l), discriminator(mu_u))
                disc_optimizer.zero_grad()
                loss.backward()
                disc_optimizer.step()
                if step < num_adv_steps - 1:
                    x_l, x_u = draw()
    return vae, discriminator


def vaal_scores(
    vae: VAAL,
    discriminator: VAALDiscriminator,
    images: np.ndarray,
    rows: np.ndarray,
    batch_size: int = 128,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """Discriminator probability of "labelled" for ``images[rows]``: (len(rows),) float64."""
    device = torch.device(device)
    out = np.empty(len(rows), dtype=np.float64)
    with eval_mode(vae, discriminator):
        for positions, x in iterate_batches(images, rows, batch_size, device):
            mu, _ = vae.encode(_resize(x, vae.image_size))
            out[positions] = torch.sigmoid(discriminator(mu)).double().cpu().numpy()
    return out


@register_strategy("vaal")
class VAALStrategy(Strategy):
    """The ``budget`` unlabelled slices with the lowest discriminator output (most surely
    unlabelled) after training VAAL on ``context.images()``; a random round when nothing
    is labelled yet.

    Args:
        latent_dim: VAE latent size (published: 32).
        epochs: training iterations = pool size x epochs / batch_size (published: 100).
        batch_size: slices per labelled and per unlabelled batch (published: 128).
        lr: Adam learning rate of both networks (published: 5e-4).
        beta: KL weight of the beta-VAE (published: 1).
        adversary_weight: weight of the VAE's adversarial loss (published: 1).
        num_vae_steps, num_adv_steps: updates per iteration (published: 2 and 1).
        channels: encoder widths (published: 128, 256, 512, 1024).
        image_size: resize slices to this size for VAAL (default: as given).
    """

    def __init__(
        self,
        latent_dim: int = 32,
        epochs: float = 100,
        batch_size: int = 128,
        lr: float = 5e-4,
        beta: float = 1.0,
        adversary_weight: float = 1.0,
        num_vae_steps: int = 2,
        num_adv_steps: int = 1,
        channels: Sequence[int] = (128, 256, 512, 1024),
        image_size: int | None = None,
    ) -> None:
        self.latent_dim = positive_int(latent_dim, "vaal.latent_dim")
        self.epochs = non_negative_float(epochs, "vaal.epochs")
        self.batch_size = positive_int(batch_size, "vaal.batch_size")
        self.lr = non_negative_float(lr, "vaal.lr")
        self.beta = non_negative_float(beta, "vaal.beta")
        self.adversary_weight = non_negative_float(adversary_weight, "vaal.adversary_weight")
        self.num_vae_steps = positive_int(num_vae_steps, "vaal.num_vae_steps")
        self.num_adv_steps = positive_int(num_adv_steps, "vaal.num_adv_steps")
        self.channels = tuple(positive_int(c, "vaal.channels") for c in channels)
        self.image_size = None if image_size is None else positive_int(image_size, "vaal.image_size")

    def select_rows(self, context: SelectionContext, budget: int) -> np.ndarray:
        if len(context.labelled_indices) == 0:
            return random_rows(context, budget, self.rng(context, "first_round"))
        images = context.images()
        device = resolve_device(context.device)
        iterations = max(1, int(len(images) * self.epochs) // self.batch_size)
        logger.info("vaal: training %d iterations on %d slices", iterations, len(images))
        vae, discriminator = train_vaal(
            images,
            context.labelled_indices,
            context.unlabelled_indices,
            iterations,
            seed=self.seed_for(context, "train"),
            device=device,
            image_size=self.image_size,
            latent_dim=self.latent_dim,
            channels=self.channels,
            batch_size=self.batch_size,
            lr=self.lr,
            beta=self.beta,
            adversary_weight=self.adversary_weight,
            num_vae_steps=self.num_vae_steps,
            num_adv_steps=self.num_adv_steps,
        )
        rows = context.unlabelled_indices
        scores = vaal_scores(vae, discriminator, images, rows, self.batch_size, device)
        return rows[np.argsort(scores, kind="stable")[:budget]]
