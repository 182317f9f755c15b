"""The one question every selection strategy answers: which ``budget`` unlabelled slices
should be annotated next?

A strategy gets a :class:`SelectionContext` (the pool of slice records, the labelled ids,
the round, the seed, and lazy access to embeddings, images and the previous round's
models) and returns slice ids. Strategies are swappable by name (see
:mod:`alseg_monai.selection.registry`); anything with a ``select(context, budget)``
method plugs in the same way, and :func:`check_selection` validates its answer.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError, DataError
from ..utils import derive_seed

__all__ = ["SelectionContext", "Strategy", "check_selection"]


class SelectionContext:
    """What a strategy may look at when it selects (paper Sec. 3: one AL round).

    Row ``i`` of every lazily computed array is ``pool[i]``. Providers are callables given
    at construction and evaluated at most once, on first use, so a strategy that needs no
    model never triggers inference and one that needs no images never loads them.

    Args:
        pool: slice records (dicts with a unique ``"id"``), labelled and unlabelled.
        labelled: ids of the slices annotated so far (all in ``pool``).
        round: AL round index, 0 for the first selection.
        seed: experiment seed; strategies derive their random streams from it and ``round``.
        num_classes: segmentation classes, background included (for model-based strategies).
        device: where strategies compute (``None``: CUDA when available, else CPU).
        embeddings: provider of the (N, D) float32 GCL embeddings of the pool.
        images: provider of the (N, C, H, W) float32 preprocessed slices of the pool.
        models: provider of the previous round's trained segmentation networks (each with
            ``forward(x) -> (B, num_classes, H, W)`` logits and ``bottleneck_features(x)
            -> (B, F)``); empty in round 0.

    Raises:
        DataError: records without a string ``id``, repeated ids, labelled ids missing
            from the pool or repeated.
        ConfigError: a negative round, a non-integer seed, or a provider that is not callable.
    """

    def __init__(
        self,
        pool: Sequence[Mapping[str, Any]],
        labelled: Sequence[str],
        round: int = 0,
        seed: int = 0,
        num_classes: int | None = None,
        device: str | torch.device | None = None,
        embeddings: Callable[[], Any] | None = None,
        images: Callable[[], Any] | None = None,
        models: Callable[[], Sequence[nn.Module]] | None = None,
    ) -> None:
        if isinstance(round, bool) or not isinstance(round, (int, np.integer)) or round < 0:
            raise ConfigError(f"SelectionContext: round must be a non-negative integer, got {round!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise ConfigError(f"SelectionContext: seed must be an integer, got {seed!r}")
        self.pool = list(pool)
        self.ids = _pool_ids(self.pool)
        self.row_of = {sid: row for row, sid in enumerate(self.ids)}
        self.labelled = list(labelled)
        self.labelled_indices = _labelled_rows(self.labelled, self.row_of)
        mask = np.zeros(len(self.pool), dtype=bool)
        mask[self.labelled_indices] = True
        self.labelled_mask = mask
        self.unlabelled_indices = np.flatnonzero(~mask)
        self.round, self.seed = int(round), int(seed)
        self.num_classes, self.device = num_classes, device
        self._providers = {"embeddings": embeddings, "images": images, "models": models}
        for name, provider in self._providers.items():
            if provider is not None and not callable(provider):
                raise ConfigError(f"SelectionContext: {name} must be a callable returning the {name}, got {provider!r}")
        self._cache: dict[str, Any] = {}

    def __len__(self) -> int:
        return len(self.pool)

    def __repr__(self) -> str:
        return (
            f"SelectionContext(pool={len(self.pool)} slices, labelled={len(self.labelled)}, round={self.round}, "
            f"seed={self.seed}, providers={[k for k, v in self._providers.items() if v is not None]})"
        )

    def has(self, name: str) -> bool:
        """Whether a provider ``name`` (``embeddings``, ``images``, ``models``) was given."""
        return self._providers.get(name) is not None

    def _provide(self, name: str) -> Any:
        if name not in self._cache:
            provider = self._providers[name]
            if provider is None:
                raise ConfigError(
                    f"SelectionContext: this strategy needs {name}() but no {name} provider was given; "
                    f"pass {name}=callable when building the context"
                )
            self._cache[name] = provider()
        return self._cache[name]

    def embeddings(self) -> np.ndarray:
        """(N, D) float32 embeddings of the pool (computed once)."""
        if "embeddings_checked" not in self._cache:
            array = _as_float32(self._provide("embeddings"))
            if array.ndim != 2 or array.shape[0] != len(self.pool):
                raise DataError(
                    f"SelectionContext.embeddings(): expected shape (N, D) with N = {len(self.pool)} pool slices, "
                    f"got {tuple(array.shape)}"
                )
            self._cache["embeddings_checked"] = array
        return self._cache["embeddings_checked"]

    def images(self) -> np.ndarray:
        """(N, C, H, W) float32 preprocessed slices of the pool (loaded once)."""
        if "images_checked" not in self._cache:
            array = _as_float32(self._provide("images"))
            if array.ndim != 4 or array.shape[0] != len(self.pool):
                raise DataError(
                    f"SelectionContext.images(): expected shape (N, C, H, W) with N = {len(self.pool)} pool "
                    f"slices, got {tuple(array.shape)}"
                )
            self._cache["images_checked"] = array
        return self._cache["images_checked"]

    def models(self) -> list[nn.Module]:
        """The previous round's trained segmentation networks (empty in round 0)."""
        if not self.has("models"):
            return []
        if "models_checked" not in self._cache:
            models = list(self._provide("models") or [])
            for i, model in enumerate(models):
                if not callable(model):
                    raise DataError(
                        f"SelectionContext.models(): item {i} is not a callable network, got {type(model).__name__}"
                    )
            self._cache["models_checked"] = models
        return self._cache["models_checked"]


def _pool_ids(pool: list[Mapping[str, Any]]) -> list[str]:
    ids = []
    for i, record in enumerate(pool):
        sid = record.get("id") if isinstance(record, Mapping) else None
        if not isinstance(sid, str):
            raise DataError(
                f"SelectionContext: pool[{i}] must be a slice record with a string 'id', got {record!r:.120}"
            )
        ids.append(sid)
    repeated = [sid for sid, count in Counter(ids).items() if count > 1]
    if repeated:
        raise DataError(f"SelectionContext: pool ids must be unique, repeated: {repeated[:5]}")
    return ids


def _labelled_rows(labelled: list[str], row_of: dict[str, int]) -> np.ndarray:
    missing = [sid for sid in labelled if sid not in row_of]
    if missing:
        raise DataError(f"SelectionContext: labelled ids not in the pool: {missing[:5]} ({len(missing)} in all)")
    rows = np.array(sorted(row_of[sid] for sid in labelled), dtype=np.int64)
    if np.unique(rows).size != rows.size:
        raise DataError("SelectionContext: labelled ids must not repeat")
    return rows


def _as_float32(array: Any) -> np.ndarray:
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu().numpy()
    return np.ascontiguousarray(array, dtype=np.float32)


def check_budget(context: SelectionContext, budget: int) -> int:
    """``budget`` as an int, checked against the unlabelled pool.

    Raises:
        ConfigError: not an integer, negative, or more than the unlabelled slices.
    """
    if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)):
        raise ConfigError(f"budget: expected an integer number of slices, got {budget!r}")
    free = len(context.unlabelled_indices)
    if not 0 <= budget <= free:
        raise ConfigError(f"budget: expected 0 <= budget <= {free} unlabelled slices, got {budget}")
    return int(budget)


def check_selection(context: SelectionContext, ids: Sequence[str], budget: int, who: str = "strategy") -> list[str]:
    """Validate a strategy's answer: exactly ``budget`` distinct unlabelled pool ids.

    The AL loop calls this on every strategy's result, built-in or a user's own
    (bundle ``_target_``), so a faulty plug-in fails where it is, not rounds later.

    Raises:
        ConfigError: the answer is not a list of ``budget`` distinct ids of unlabelled
            pool slices (the message names ``who`` and the offending ids).
    """
    ids = list(ids)
    if len(ids) != budget:
        raise ConfigError(f"{who}: returned {len(ids)} ids, expected budget = {budget}")
    bad = [sid for sid in ids if not isinstance(sid, str) or sid not in context.row_of]
    if bad:
        raise ConfigError(f"{who}: returned ids that are not pool slice ids: {bad[:5]}")
    if len(set(ids)) != len(ids):
        raise ConfigError(f"{who}: returned repeated ids")
    already = [sid for sid in ids if context.labelled_mask[context.row_of[sid]]]
    if already:
        raise ConfigError(f"{who}: returned already labelled ids: {already[:5]}")
    return ids


class Strategy:
    """Base class of the built-in strategies.

    Subclasses implement :meth:`select_rows` (pool row indices); :meth:`select` checks
    the budget, maps rows to ids and validates the answer. Every knob is a constructor
    keyword with the published default, so a bundle config can set it by name.
    """

    name: ClassVar[str] = "strategy"
    # The experiment's encoder whose embeddings context.embeddings() must provide (trained
    # before any selection runs), or None for strategies that never call it.
    encoder: str | None = None

    def select(self, context: SelectionContext, budget: int) -> list[str]:
        """``budget`` distinct unlabelled slice ids, deterministic given ``context.seed`` and ``round``."""
        budget = check_budget(context, budget)
        if budget == 0:
            return []
        rows = np.asarray(self.select_rows(context, budget), dtype=np.int64)
        return check_selection(context, [context.ids[row] for row in rows.tolist()], budget, self.name)

    def select_rows(self, context: SelectionContext, budget: int) -> np.ndarray:
        """(budget,) pool row indices of unlabelled slices; ``budget`` >= 1 here."""
        raise NotImplementedError(f"{type(self).__name__} must implement select_rows(context, budget)")

    def seed_for(self, context: SelectionContext, *names: object) -> int:
        """Seed of this strategy's sub-task ``names`` in this round of this experiment."""
        return derive_seed(context.seed, "selection", self.name, context.round, *names)

    def rng(self, context: SelectionContext, *names: object) -> np.random.Generator:
        """NumPy generator seeded by :meth:`seed_for`."""
        return np.random.default_rng(self.seed_for(context, *names))

    def __repr__(self) -> str:
        knobs = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({knobs})"


def random_rows(context: SelectionContext, budget: int, rng: np.random.Generator) -> np.ndarray:
    """``budget`` unlabelled rows uniformly at random (the first round of model-based strategies)."""
    return rng.choice(context.unlabelled_indices, size=budget, replace=False)


def top_rows(rows: np.ndarray, scores: np.ndarray, budget: int) -> np.ndarray:
    """The ``budget`` rows of highest score; ties go to the earlier pool row."""
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    return np.asarray(rows)[order[:budget]]


def positive_int(value: object, name: str, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum``, else ConfigError naming the setting ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return int(value)


def non_negative_float(value: object, name: str, below: float | None = None) -> float:
    """``value`` as a float >= 0 (and < ``below`` when given), else ConfigError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ConfigError(f"{name}: expected a number, got {value!r}")
    value = float(value)
    if not np.isfinite(value) or value < 0 or (below is not None and value >= below):
        limit = f" and < {below}" if below is not None else ""
        raise ConfigError(f"{name}: expected a finite number >= 0{limit}, got {value!r}")
    return value
