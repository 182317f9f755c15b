"""Slice-level active-learning strategies for MONAI Label: ``gcl_coreset``, ``coreset``, ``random``.

Each is a :class:`monailabel.interfaces.tasks.strategy.Strategy` whose answer names one
volume of the datastore and the slices of it to annotate next::

    {"id": "patient003_frame01", "slices": [1, 6, 9], "pick_order": [6, 1, 9],
     "slice_axis": 2, "num_slices": 10, "slice_positions": [[x, y, z], ...],
     "annotated_slices": [...], "al_strategy": "gcl_coreset", "scope": "volume",
     "encoder": "trained", "unannotated_slices": 57}

(MONAI Label's endpoint adds the image's datastore info: ``path``, ``name``, ...).
``slices`` are indices along the volume's third voxel axis (``slice_axis``: IJK ``k``);
``slice_positions`` are the RAS world coordinates (mm) of their centres, for a viewer
to jump to.

The selection itself is the library's (:mod:`alseg_monai.selection`), on the pool of
every slice of every datastore volume, with the annotated slices and the slices served
within ``pending_ttl`` seconds but not labelled yet as the labelled set (K-Center
Greedy's initial centres; never picked again):

- ``gcl_coreset``: :class:`~alseg_monai.selection.GCLCoresetStrategy`, K-Center Greedy on
  the GCL encoder's embeddings, with the bundle's ``strategy_options#gcl_coreset``
  (the paper's method);
- ``coreset``: :class:`~alseg_monai.selection.CoresetStrategy`, on raw preprocessed pixels;
- ``random``: :class:`~alseg_monai.selection.RandomStrategy`.

Scope (request ``"scope"`` or ``--conf scope``):

- ``volume`` (default): the strategy's first pick over the whole pool names the volume;
  the rest of the ``budget`` is picked by the same strategy among that volume's free
  slices (the whole pool's centres kept), so an annotator gets several slices of one
  volume per request;
- ``global``: the strategy picks ``budget`` slices over the whole pool, as one round of
  the bundle's experiment would; the answer is the volume holding most of them (ties:
  the earliest pick), with those of its slices. The other picks stay free, and since
  K-Center Greedy is greedy the next requests serve them in order.

Request keys: ``budget`` (slices, default ``--conf budget``), ``scope``, ``client_id``.
"""

from __future__ import annotations

import logging
import time
from collections import Counter

import numpy as np
from monailabel.interfaces.tasks.strategy import Strategy

from alseg_monai.data.records import slice_id
from alseg_monai.selection import CoresetStrategy, GCLCoresetStrategy, RandomStrategy, SelectionContext

from .annotations import publish, sync_labels
from .volumes import SLICE_AXIS, load_datastore

logger = logging.getLogger(__name__)


class SliceStrategy(Strategy):
    """Base of the app's strategies: pool, centres, scope and bookkeeping."""

    name = "slice"

    def __init__(self, state, description: str) -> None:
        super().__init__(description)
        self.state = state

    def info(self):
        return {"description": self.description, "budget": self.state.config.budget,
                "scope": self.state.config.scope, "slice_axis": SLICE_AXIS}

    # What the library strategy is, and which providers it needs.
    def library_strategy(self):
        raise NotImplementedError

    def providers(self, volumes, rows: np.ndarray) -> dict:
        return {}

    def __call__(self, request, datastore):
        state, config = self.state, self.state.config
        budget = int(request.get("budget", config.budget))
        scope = str(request.get("scope", config.scope))
        if budget < 1 or scope not in ("volume", "global"):
            raise ValueError(f"{self.name}: budget must be >= 1 and scope 'volume' or 'global', "
                             f"got {budget}, {scope!r}")
        start = time.perf_counter()
        sync_labels(datastore, config, state.registry, state.volumes)
        volumes = load_datastore(datastore, state.volumes)
        data = state.registry.read()
        annotated = state.registry.annotated(data)
        reserved = state.registry.pending(data, ttl=config.pending_ttl)

        pool, volume_of, z_of = [], [], []
        taken = []
        for index, volume in enumerate(volumes):
            busy = set(annotated.get(volume.image_id, [])) | set(reserved.get(volume.image_id, []))
            for z in range(volume.num_slices):
                pool.append({"id": slice_id(volume.image_id, z), "volume": volume.image_id, "slice": z})
                volume_of.append(index)
                z_of.append(z)
                taken.append(z in busy)
        volume_of, z_of, taken = np.asarray(volume_of), np.asarray(z_of), np.asarray(taken, dtype=bool)
        free = int((~taken).sum())
        if free == 0:
            logger.info("alseg %s: every slice of the datastore is annotated or reserved", self.name)
            return None

        strategy, round_ = self.library_strategy(), int(data.get("requests", 0))

        def select(rows: np.ndarray, count: int) -> list[int]:
            """``count`` rows of the pool (among ``rows``) picked by the library strategy."""
            sub = [pool[r] for r in rows]
            labelled = [pool[r]["id"] for r in rows if taken[r]]
            context = SelectionContext(sub, labelled, round=round_, seed=config.seed, device=config.device,
                                       **self.providers(volumes, rows))
            row_of = {record["id"]: r for record, r in zip(sub, rows)}
            return [row_of[i] for i in strategy.select(context, count)]

        all_rows = np.arange(len(pool))
        if scope == "global":
            picks = select(all_rows, min(budget, free))
            counts = Counter(int(volume_of[r]) for r in picks)
            best = max(counts.values())
            chosen = next(int(volume_of[r]) for r in picks if counts[int(volume_of[r])] == best)
            picks = [r for r in picks if volume_of[r] == chosen]
        else:
            first = select(all_rows, 1)[0]
            chosen = int(volume_of[first])
            in_volume = volume_of == chosen
            free_here = int((in_volume & ~taken).sum())
            picks = [first]
            if budget > 1 and free_here > 1:
                rows = np.flatnonzero(taken | in_volume)  # every centre, and this volume's slices
                taken[first] = True  # the first pick is a centre of the rest
                picks += select(rows, min(budget - 1, free_here - 1))
        volume = volumes[chosen]
        order = [int(z_of[r]) for r in picks]
        slices = sorted(order)

        encoder_state = self.encoder_state()
        with state.registry.update() as stored:
            state.registry.add_pending(stored, volume.image_id, slices, volume.num_slices, self.name,
                                       request.get("client_id"))
        publish(datastore, state.registry, volume)
        logger.info("alseg %s (%s scope, %.2fs): %s slices %s", self.name, scope, time.perf_counter() - start,
                    volume.image_id, slices)
        return {
            "id": volume.image_id,
            "slices": slices,
            "pick_order": order,
            "slice_axis": SLICE_AXIS,
            "num_slices": volume.num_slices,
            "slice_positions": volume.slice_positions(slices),
            "annotated_slices": annotated.get(volume.image_id, []),
            "al_strategy": self.name,
            "scope": scope,
            "encoder": encoder_state,
            "unannotated_slices": free - len(slices),
        }

    def encoder_state(self):
        return None


class GCLCoreset(SliceStrategy):
    """K-Center Greedy on group-contrastive embeddings (paper Sec. 3.2.2)."""

    name = "gcl_coreset"

    def __init__(self, state) -> None:
        super().__init__(state, "GCL + Coreset: K-Center Greedy on the group-contrastive encoder's slice embeddings")

    def library_strategy(self):
        return GCLCoresetStrategy(**self.state.config.strategy_options("gcl_coreset"))

    def providers(self, volumes, rows):
        def embeddings():
            features = np.concatenate([self.state.embeddings.features(v) for v in volumes])
            return features[rows]

        return {"embeddings": embeddings}

    def encoder_state(self):
        return "trained" if self.state.embeddings.encoder()[1] else "untrained"


class Coreset(SliceStrategy):
    """K-Center Greedy on raw preprocessed pixels (the paper's Coreset baseline)."""

    name = "coreset"

    def __init__(self, state) -> None:
        super().__init__(state, "Coreset: K-Center Greedy on the preprocessed slices' pixels")

    def library_strategy(self):
        return CoresetStrategy(**self.state.config.strategy_options("coreset"))

    def providers(self, volumes, rows):
        def images():
            stacked = np.concatenate([np.moveaxis(v.image, -1, 0) for v in volumes])  # (N, C, S, S)
            return stacked[rows]

        return {"images": images}


class RandomSlices(SliceStrategy):
    """Uniformly random free slices (the paper's Random baseline)."""

    name = "random"

    def __init__(self, state) -> None:
        super().__init__(state, "Random: free slices drawn uniformly")

    def library_strategy(self):
        return RandomStrategy()
