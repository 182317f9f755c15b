"""Which features a feature-space strategy (TypiClust, ProbCover) measures, in one place.

A strategy names its source and the experiment provides it through the
:class:`~alseg_monai.selection.SelectionContext`:

- ``features="embeddings"``: ``context.embeddings()``, the (N, D) features of the
  experiment's encoder ``encoder`` (``gcl``: the paper's group-contrastive encoder;
  ``ntxent``: its NT-Xent-only ablation), ``embedding="backbone"`` (g(x)) or
  ``"projection"`` (the head's z);
- ``features="pixels"``: ``context.images()`` flattened to (N, C*H*W); no encoder.

then maps them into a :mod:`~alseg_monai.selection.geometry` (``cosine`` by default: the
published TypiClust and ProbCover code L2-normalises its self-supervised features).
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from .base import SelectionContext
from .geometry import FEATURE_GEOMETRIES, feature_geometry

__all__ = ["FEATURE_SOURCES", "feature_knobs", "pool_features"]

FEATURE_SOURCES = ("embeddings", "pixels")
EMBEDDING_KINDS = ("backbone", "projection")


def choice(value: str, choices: tuple[str, ...], name: str) -> str:
    """``value`` if it is one of ``choices``, else ConfigError naming the setting ``name``."""
    if value not in choices:
        raise ConfigError(f"{name}: expected one of {list(choices)}, got {value!r}")
    return value


def feature_knobs(who: str, features: str, encoder: str | None, embedding: str,
                  geometry: str) -> tuple[str, str | None, str, str]:
    """The checked ``(features, encoder, embedding, geometry)`` knobs of strategy ``who``;
    ``encoder`` is ``None`` for pixels (the experiment then trains no encoder for it) and
    ``gcl`` when not given for embeddings.

    Raises:
        ConfigError: an unknown source, embedding kind or geometry, or an encoder given with pixels.
    """
    features = choice(features, FEATURE_SOURCES, f"{who}.features")
    embedding = choice(embedding, EMBEDDING_KINDS, f"{who}.embedding")
    geometry = choice(geometry, FEATURE_GEOMETRIES, f"{who}.geometry")
    if features == "pixels":
        if encoder is not None:
            raise ConfigError(f"{who}: encoder={encoder!r} is set but features='pixels' uses no encoder")
        return features, None, embedding, geometry
    return features, "gcl" if encoder is None else str(encoder), embedding, geometry


def pool_features(context: SelectionContext, features: str, geometry: str) -> np.ndarray:
    """(N, F) float32 matrix of the pool: its embeddings or flattened slices, in ``geometry``."""
    if features == "pixels":
        images = context.images()
        raw = images.reshape(len(images), -1)
    else:
        raw = context.embeddings()
    return feature_geometry(raw, geometry)
