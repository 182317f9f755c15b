"""The active-learning experiment: select -> annotate -> train -> evaluate -> record, per
round, per repeat, per strategy, with every step's result on disk (resumable).

Paper protocol (section 3.2, REFERENCE.md): slices are the unit of annotation; a round
adds ``int(N x fraction) - |labelled|`` slices; the contrastive encoder is trained once
per experiment and shared by every strategy that uses embeddings; each round trains
``models_per_round`` segmentation models and reports the test 3D Dice of the one with
the best validation Dice; repeats differ by seed.

Distributed (``torchrun``, docs/distributed.md): every rank runs the same loop. Training,
embedding and scoring are shared across ranks by the steps themselves; each selection
runs on every rank and rank 0's picks are broadcast, so all ranks train on the same
labelled set. Rank 0 writes every file; a collective (a broadcast, a gather or a
barrier) always separates a rank-0 write from another rank's check or read of that file.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data import DatasetIndex, SliceCache, SliceDataset, VolumeDataset, read_dataset, split_dataset
from ..errors import AlsegError, ConfigError
from ..evaluation import annotation_cost, evaluate_volumes
from ..utils.distributed import (
    barrier,
    broadcast_object,
    is_main_process,
    main_process_first,
    main_process_only,
    rank,
    world_size,
)
from ..utils.io import atomic_write_json, clean_stale_temp_files, read_json
from ..utils.seed import derive_seed
from .budgets import DEFAULT_BUDGETS, check_budgets, round_sizes
from .diagnostics import pick_diagnostics
from .models import load_model, load_round_models, network_spec
from .oracle import HumanOracle, SimulatedOracle
from .state import RoundPaths, RunPaths, check_settings

__all__ = ["ActiveLearningExperiment", "StrategySpec"]

logger = logging.getLogger(__name__)

# The ablation of paper Table 4: the same encoder trained with NT-Xent alone.
DEFAULT_ENCODER_VARIANTS = {
    "ntxent": {"groupings": [], "batch_size": None,
               "weights": {"ntxent": 1.0, "patient": 0.0, "volume": 0.0, "slice": 0.0}},
}
LABEL_KINDS = ("full", "scribble")
UNITS = ("slice", "volume")
ORACLES = ("simulated", "human")


@dataclass
class StrategySpec:
    """One line of the comparison: a strategy with its label kind and selection unit.

    Attributes:
        name: the name shown in tables and used as the run sub-folder.
        strategy: a registered strategy name, or an object with ``select(context, budget)``.
        label_kind: ``full`` or ``scribble``.
        unit: ``slice`` or ``volume`` (volume: random whole volumes and a 3D UNet, Fig. 2).
        options: keyword arguments of a registered strategy.
    """

    name: str
    strategy: Any
    label_kind: str = "full"
    unit: str = "slice"
    options: dict = field(default_factory=dict)


class AnnotationPending(AlsegError):
    """Raised inside the loop when a human annotation is awaited; the run stops cleanly."""


class ActiveLearningExperiment:
    """A complete slice-based AL experiment, driven by the bundle config.

    Args:
        dataset_kind: reader of :func:`~alseg_monai.data.read_dataset`.
        dataset_dir: the dataset folder, in its native layout (never written).
        output_dir: the run directory (state, checkpoints, reports).
        dataset_options: reader options.
        image_size: in-plane size of every slice (paper 256).
        intensity: normalisation override ``{"mode": ..., **options}`` (default per kind).
        split: ``{"method", "fractions", "seed", "lists"}`` of :func:`~alseg_monai.data.split_dataset`.
        budgets: cumulative labelled fractions (paper 2, 3, 4, 5, 10, 15, 20, 40 %).
        strategies: names, ``{"name", "strategy", "label_kind", "unit", **options}`` dicts, or
            strategy objects (``select(context, budget)``) to compare.
        strategy_options: per registered strategy name, keyword arguments.
        label_kind: default label kind, ``full`` or ``scribble``.
        unit: default selection unit, ``slice`` or ``volume``.
        repeats: AL repeats; repeat ``r`` uses seed ``seed + r``.
        seed: the base seed.
        encoder: settings of the group-contrastive encoder ``gcl`` (``epochs``, ``batch_size``,
            ``groupings``, ``weights`` {ntxent, patient, volume, slice}, ``temperature``, ``lr``,
            ``weight_decay``, ``feature_dim``, and ``num_workers``, its own loader workers,
            default ``num_workers``: one worker overlaps the views' augmentation with the
            network on a CPU).
        encoder_variants: further encoders, by name: settings merged onto ``encoder``
            (default ``ntxent``: NT-Xent only, no groupings, for the ablation strategy
            ``ntxent_coreset``). Only the encoders the strategies use are trained.
        segmentation: per-round training settings (``network``, ``iterations_scale``,
            ``min_iterations``, ``batch_size``, ``models_per_round``, ``val_interval``, and any
            other :func:`~alseg_monai.segmentation.train_round` argument).
        evaluation: ``convention`` (paper / monai), ``bootstrap`` samples, ``bootstrap_unit``.
        scribble_cost: cost of a scribbled slice in full-mask units (paper 1/15).
        oracle: ``simulated`` (dataset labels) or ``human`` (export, wait, import).
        synthesize_scribbles: draw scribbles from masks where the dataset has none.
        annotation_wait: seconds to wait for a human's files before stopping (0: stop at once).
        device: ``cpu`` or ``cuda``.
        num_workers: data-loader workers.
        cache_dir: persistent slice cache (default ``<output_dir>/cache``; "" disables it).
        progress: progress bars.
        report: write tables and plots after the loop.
        workers: processes that run the (strategy, repeat) chains side by side, each with
            ``torch.get_num_threads() // workers`` threads (1: in this process). Small
            networks use many threads poorly, so 2 one-thread workers train about 1.6x
            faster than one two-thread process on 2 cores. Simulated oracle only.
    """

    def __init__(
        self,
        dataset_kind: str,
        dataset_dir: str,
        output_dir: str,
        dataset_options: Mapping | None = None,
        image_size: int = 256,
        intensity: Mapping | None = None,
        split: Mapping | None = None,
        budgets: Sequence[float] = DEFAULT_BUDGETS,
        strategies: Sequence[Any] = ("gcl_coreset", "coreset", "random"),
        strategy_options: Mapping[str, Mapping] | None = None,
        label_kind: str = "full",
        unit: str = "slice",
        repeats: int = 5,
        seed: int = 0,
        encoder: Mapping | None = None,
        encoder_variants: Mapping[str, Mapping] | None = None,
        segmentation: Mapping | None = None,
        evaluation: Mapping | None = None,
        scribble_cost: float = 1 / 15,
        oracle: str = "simulated",
        synthesize_scribbles: bool = True,
        annotation_wait: float = 0,
        device: str = "cpu",
        num_workers: int = 0,
        cache_dir: str | None = None,
        progress: bool = True,
        report: bool = True,
        workers: int = 1,
    ) -> None:
        self.settings = _jsonable({
            "dataset_kind": dataset_kind, "dataset_dir": str(dataset_dir), "dataset_options": dict(dataset_options or {}),
            "image_size": int(image_size), "intensity": dict(intensity or {}), "split": dict(split or {}),
            "budgets": check_budgets(budgets), "label_kind": label_kind, "unit": unit, "repeats": int(repeats),
            "seed": int(seed), "encoder": dict(encoder or {}),
            "encoder_variants": {str(k): dict(v) for k, v in (DEFAULT_ENCODER_VARIANTS if encoder_variants is None
                                                                else encoder_variants).items()},
            "segmentation": dict(segmentation or {}),
            "evaluation": dict(evaluation or {}), "scribble_cost": float(scribble_cost), "oracle": oracle,
            "synthesize_scribbles": _check_bool("synthesize_scribbles", synthesize_scribbles),
        })
        _check_choice("label_kind", label_kind, LABEL_KINDS)
        _check_choice("unit", unit, UNITS)
        _check_choice("oracle", oracle, ORACLES)
        if int(repeats) < 1:
            raise ConfigError(f"repeats={repeats}; expected at least 1")
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ConfigError(f"workers={workers!r}; expected a positive integer")
        if workers > 1 and oracle != "simulated":
            raise ConfigError(f"workers={workers}: parallel chains need the simulated oracle (oracle={oracle!r}); "
                              "use workers 1 with a human annotator")
        if "gcl" in self.settings["encoder_variants"]:
            raise ConfigError("encoder_variants: 'gcl' names the main encoder (the 'encoder' settings); "
                              "give the variant another name")
        self.paths = RunPaths(Path(output_dir))
        self.budgets = self.settings["budgets"]
        self.specs = _strategy_specs(strategies, dict(strategy_options or {}), label_kind, unit)
        self.settings["strategy_settings"] = _jsonable({spec.name: _spec_settings(spec, self._strategy(spec))
                                                        for spec in self.specs if spec.unit == "slice"})
        self._check_ensembles(self.settings["segmentation"].get("models_per_round", 5))
        self.annotation_wait = float(annotation_wait)
        self.device = torch.device(device)
        self.num_workers = int(num_workers)
        self.cache_dir = self.paths.root / "cache" if cache_dir is None else (Path(cache_dir) if cache_dir else None)
        self.progress = _check_bool("progress", progress)
        self.write_report = _check_bool("report", report)
        self.workers = int(workers)
        self._prepared = False
        self._embeddings: dict[tuple[str, str], np.ndarray] = {}
        self._worker = False

    def _check_ensembles(self, models_per_round: int) -> None:
        for spec in self.specs:
            needed = getattr(self._strategy(spec), "min_models", 0) if spec.unit == "slice" else 0
            if needed > models_per_round:
                raise ConfigError(
                    f"strategies: {spec.name!r} needs an ensemble of at least {needed} models per round; "
                    f"segmentation#models_per_round is {models_per_round}"
                )

    # set-up -------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Read and split the dataset, check the budgets against the pool and load every
        volume once (all input errors surface here, before any training).

        Distributed, rank 0 prepares first (writing the run's settings, split and slice
        cache); the other ranks then read them without writing."""
        if self._prepared:
            return
        with main_process_first():
            self._prepare()
        self._prepared = True

    def _prepare(self) -> None:
        root = self.paths.root
        if is_main_process() and not self._worker:
            root.mkdir(parents=True, exist_ok=True)
            removed = clean_stale_temp_files(root)
            if removed:
                logger.info("removed %d temporary files left by an interrupted run", len(removed))
        s = self.settings
        self.index = read_dataset(s["dataset_kind"], s["dataset_dir"], **s["dataset_options"])
        self.splits = self._split(self.index)
        self.pool = self.splits["train"].slices
        self.pool_ids = [r["id"] for r in self.pool]
        self.records = {r["id"]: r for r in self.pool}
        round_sizes(self.budgets, len(self.pool))
        self._check_encoder_batches()
        if not self.splits["test"].volumes:
            raise ConfigError("split: the test split is empty; adjust split fractions or lists")
        if not self.splits["val"].volumes:
            raise ConfigError("split: the validation split is empty; the best model of a round is chosen on it: "
                              "raise the second of split#fractions, name patients in split#lists#val, or give "
                              "a datalist a 'validation' list")
        if is_main_process() and not self._worker:
            # Recorded once the inputs passed their checks, so a run stopped by bad input can
            # be retried with corrected settings in the same output_dir.
            check_settings(self.paths.settings, self.settings)
        cache_kwargs = {"cache_dir": self.cache_dir, "progress": self.progress and is_main_process()}
        if s["intensity"]:
            options = dict(s["intensity"])
            cache_kwargs.update(intensity=options.pop("mode"), intensity_options=options)
        volumes = [v for name in ("train", "val", "test") for v in self.splits[name].volumes]
        subset = DatasetIndex(self.index.kind, self.index.root, volumes, [], self.index.num_classes,
                              self.index.channels, self.index.ignore_index, options=self.index.options)
        self.cache = SliceCache.from_index(subset, s["image_size"], **cache_kwargs)
        self.encoder_settings = self._encoder_settings("gcl")
        self.val_volumes = VolumeDataset(self.splits["val"].volumes, self.cache)
        self.test_volumes = VolumeDataset(self.splits["test"].volumes, self.cache)
        logger.info("%s\n  split: %s", self.index.summary(),
                    {k: len(v.patients) for k, v in self.splits.items()})

    def _encoder_settings(self, name: str = "gcl") -> dict:
        """The settings of encoder ``name`` for this pool (``gcl``: ``encoder``; a variant:
        ``encoder`` updated with its ``encoder_variants`` entry). On datasets with one
        volume per patient (CHAOS, MS-CMR, DAVIS) the patient group equals the volume
        group, so the patient grouping is dropped with a warning, as the paper did."""
        settings = dict(self.settings["encoder"])
        if name != "gcl":
            if name not in self.settings["encoder_variants"]:
                raise ConfigError(f"encoder {name!r}: not 'gcl' nor one of encoder_variants "
                                  f"{sorted(self.settings['encoder_variants'])}")
            settings.update(self.settings["encoder_variants"][name])
        groupings = list(settings.get("groupings", ("patient", "volume")))
        volumes = Counter(v["patient"] for v in self.splits["train"].volumes)
        if "patient" in groupings and max(volumes.values()) == 1:
            logger.warning("every training patient has one volume: the patient grouping duplicates the volume "
                           "grouping, so it is dropped (encoder %s groupings %s -> %s, patient weight 0)",
                           name, groupings, [g for g in groupings if g != "patient"])
            groupings.remove("patient")
            settings["weights"] = {**settings.get("weights", {}), "patient": 0.0}
        settings["groupings"] = groupings
        return settings

    def _check_encoder_batches(self) -> None:
        """Build one epoch of batches of every encoder the strategies use now, so a batch
        size that is not a multiple of the group size fails before any training."""
        from ..contrastive import GroupBatchSampler

        for name in self.encoders_used():
            settings = self._encoder_settings(name)
            sampler = GroupBatchSampler(self.pool, settings.get("batch_size"), settings["groupings"],
                                        seed=self.settings["seed"], num_replicas=world_size(), rank=rank())
            if len(sampler) == 0:
                raise ConfigError(f"encoder#batch_size: the {len(self.pool)} training slices give no batch of "
                                  f"{sampler.batch_size} per process ({world_size()} process(es)) for encoder "
                                  f"{name!r}; use a smaller batch")

    def encoders_used(self) -> list[str]:
        """Names of the encoders whose embeddings the strategies ask for, in first-use order."""
        names = [self._encoder_of(spec) for spec in self.specs]
        return list(dict.fromkeys(name for name in names if name is not None))

    def _encoder_of(self, spec: StrategySpec) -> str | None:
        if spec.unit != "slice":
            return None
        strategy = self._strategy(spec)
        # A user's own strategy (no `encoder` attribute) may call context.embeddings(): the GCL one.
        return getattr(strategy, "encoder", "gcl")

    def _split(self, index: DatasetIndex) -> dict[str, DatasetIndex]:
        options = {"method": "random", "fractions": (0.7, 0.1, 0.2), "seed": 0, **self.settings["split"]}
        splits = split_dataset(index, **options)
        patients = {name: part.patients for name, part in splits.items()}
        if is_main_process():
            if self.paths.splits.is_file() and read_json(self.paths.splits) != patients:
                raise ConfigError(f"{self.paths.splits}: the dataset's split changed since this run started; "
                                  "use a new output_dir")
            atomic_write_json(self.paths.splits, patients)
        return splits

    # the loop -----------------------------------------------------------------------------
    def run(self) -> list[dict]:
        """Run (or resume) every strategy, repeat and round; then write the report.

        Returns:
            The round metrics (rows of ``results.csv``); empty when stopped to wait for
            a human annotation.
        """
        self.prepare()
        try:
            chains = [(index, repeat) for index in range(len(self.specs)) for repeat in range(self.settings["repeats"])]
            if self.workers > 1:
                from .parallel import run_chains

                self._prepare_embeddings()  # every worker reads them; none may train an encoder
                run_chains(self, chains, self.workers)
            else:
                for index, repeat in chains:
                    self.run_chain(index, repeat)
        except AnnotationPending as pending:
            logger.warning("%s", pending)
            return []
        barrier()  # rank 0 has written the last round's metrics
        rows = self.collect_rows()
        if self.write_report:
            from .report import write_run_report

            main_process_only(write_run_report)(self, rows)
        return rows

    def _prepare_embeddings(self) -> None:
        """Train every encoder the strategies use and cache the embeddings they ask for."""
        for spec in self.specs:
            name = self._encoder_of(spec)
            if name is not None:
                self.embeddings(name, getattr(self._strategy(spec), "embedding", "backbone"))

    def __getstate__(self) -> dict:
        # A worker process re-reads the dataset and the slice cache from disk (prepare())
        # rather than receiving them pickled.
        state = dict(self.__dict__)
        for key in ("index", "splits", "pool", "pool_ids", "records", "cache", "val_volumes", "test_volumes",
                    "encoder_settings", "_pool_diagnostics"):
            state.pop(key, None)
        state.update(_prepared=False, _embeddings={})
        return state

    def run_chain(self, spec_index: int, repeat: int) -> None:
        """Run (or resume) every round of one strategy's repeat, in budget order."""
        spec = self.specs[spec_index]
        labelled: list[str] = []
        for round_index, fraction in enumerate(self.budgets):
            paths = self.paths.round(spec.name, repeat, round_index)
            if paths.done:
                labelled = read_json(paths.selection)["labelled"]
                continue
            labelled = self._run_round(spec, repeat, round_index, fraction, labelled, paths)

    def _run_round(self, spec, repeat, round_index, fraction, labelled, paths: RoundPaths) -> list[str]:
        seed = self.settings["seed"] + repeat
        start = time.perf_counter()
        selection = self._select(spec, seed, round_index, fraction, labelled, paths)
        records = [self.records[i] for i in selection["labelled"]]
        annotations = self._annotate(spec, seed, round_index, selection, records, paths)
        self._record_diagnostics(selection, annotations, paths)
        metrics = self._train_and_evaluate(spec, records, annotations, paths, seed, round_index, fraction)
        metrics.update({"repeat": repeat, "seed": seed, "round": round_index, "added": len(selection["added"]),
                        "seconds": time.perf_counter() - start})
        _write_json(paths.metrics, metrics)
        logger.info("round done: %s repeat %d budget %g%% -> Dice %.4f, cost %.2f, %.1f s",
                    spec.name, repeat, 100 * fraction, metrics["dice"], metrics["cost"], metrics["seconds"])
        return selection["labelled"]

    def run_labeled(self, spec: StrategySpec, ids: Sequence[str], paths: RoundPaths) -> dict:
        """Train and evaluate one round on the given labelled ``ids`` (the ``train.json``
        workflow); writes the round files under ``paths`` and returns its metrics."""
        self.prepare()
        start = time.perf_counter()
        records = [self.records[i] for i in ids]
        oracle = SimulatedOracle(self.cache, spec.label_kind, self.index.num_classes, self.index.ignore_index,
                                 self.settings["synthesize_scribbles"], seed=self.settings["seed"])
        fraction = len(ids) / len(self.pool)
        metrics = self._train_and_evaluate(spec, records, oracle.annotate(records), paths, self.settings["seed"],
                                           0, fraction)
        metrics.update({"seconds": time.perf_counter() - start, "labelled_ids": list(ids)})
        _write_json(paths.metrics, metrics)
        return metrics

    def _train_and_evaluate(self, spec, records, annotations, paths, seed, round_index, fraction) -> dict:
        train_start = time.perf_counter()
        result = self._train(spec, seed, round_index, fraction, records, annotations, paths)
        train_seconds = time.perf_counter() - train_start
        evaluation = self.evaluate_model(result["model"], paths.test_csv)
        return {
            "strategy": spec.name, "unit": spec.unit, "label_kind": spec.label_kind, "budget": fraction,
            "labelled": len(records), "cost": self._cost(spec, records), "dice": evaluation.mean_dice,
            "dice_per_class": [float(v) for v in evaluation.per_class],
            "dice_per_volume": [float(v) for v in evaluation.per_volume],
            "val_dice": result["val_dice"], "iterations": result["iterations"], "train_seconds": train_seconds,
        }

    def evaluate_model(self, model, csv_path):
        """Test 3D Dice of ``model`` (per-volume, per-class CSV written to ``csv_path``)."""
        self.prepare()
        settings = self.settings["evaluation"]
        return evaluate_volumes(model, self.test_volumes, self.index.num_classes,
                                convention=settings.get("convention", "paper"), csv_path=csv_path)

    # steps ----------------------------------------------------------------------------------
    def _select(self, spec, seed, round_index, fraction, labelled, paths: RoundPaths) -> dict:
        if paths.selection.is_file():
            return read_json(paths.selection)
        target = int(len(self.pool) * fraction)
        budget = target - len(labelled)
        if spec.unit == "volume":
            added = self._select_volumes(seed, round_index, labelled, target)
        else:
            context = self._context(spec, seed, round_index, labelled)
            strategy = self._strategy(spec)
            added = [str(i) for i in strategy.select(context, budget)]
        # Every rank selected (model scores are shared across ranks); all train on rank 0's picks.
        added = broadcast_object(added)
        if spec.unit != "volume":
            _check_selection(spec.name, added, labelled, budget, self.records)
        selection = {"round": round_index, "budget": fraction, "added": added, "labelled": list(labelled) + added}
        _write_json(paths.selection, selection)
        barrier()  # a human oracle reads this round's selection back
        return selection

    def _record_diagnostics(self, selection: dict, annotations: Mapping, paths: RoundPaths) -> None:
        """Add what was picked (position, patients, volumes, classes present) to the
        round's selection record, for this round's picks, all labelled slices and the pool."""
        if "diagnostics" in selection:
            return
        names = self.index.class_names

        def label_of(record):
            label = self.cache.slice(record).get("label")
            if label is None:
                label = annotations.get(record["id"], {}).get("label")
                return None if label is None else np.asarray(label)
            return label[0]

        def depth_of(volume_id):
            return int(self.cache.volume(volume_id)["image"].shape[-1])

        def describe(ids):
            return pick_diagnostics([self.records[i] for i in ids], depth_of, label_of, names)

        if getattr(self, "_pool_diagnostics", None) is None:
            self._pool_diagnostics = describe(self.pool_ids)
        selection["diagnostics"] = {"added": describe(selection["added"]), "labelled": describe(selection["labelled"]),
                                    "pool": self._pool_diagnostics}
        _write_json(paths.selection, selection)

    def _select_volumes(self, seed, round_index, labelled, target) -> list[str]:
        """Random whole volumes until at least ``target`` slices are labelled (the paper's
        volume-based baseline)."""
        have = set(labelled)
        volumes = [v for v in self.splits["train"].volumes if not any(s in have for s in self._volume_slices(v))]
        order = np.random.default_rng(derive_seed(seed, "volumes", round_index)).permutation(len(volumes))
        added: list[str] = []
        for i in order:
            if len(labelled) + len(added) >= target:
                break
            added.extend(self._volume_slices(volumes[i]))
        return added

    def _volume_slices(self, volume: Mapping) -> list[str]:
        return [s["id"] for s in self.pool if s["volume"] == volume["id"]]

    def _strategy(self, spec: StrategySpec):
        if hasattr(spec.strategy, "select"):
            return spec.strategy
        from ..selection import get_strategy

        return get_strategy(spec.strategy, **spec.options)

    def _context(self, spec, seed, round_index, labelled):
        from ..selection import SelectionContext

        previous = self.paths.round(spec.name, seed - self.settings["seed"], round_index - 1)
        return SelectionContext(
            pool=self.pool,
            labeled=list(labelled),
            round=round_index,
            seed=derive_seed(seed, "select", round_index),
            num_classes=self.index.num_classes,
            device=self.device,
            embeddings=self._embedding_provider(spec),
            images=lambda: self.cache.images(self.pool),
            models=(lambda: self._load_models(previous)) if round_index > 0 else (lambda: []),
        )

    def _embedding_provider(self, spec: StrategySpec):
        strategy = self._strategy(spec)
        encoder, kind = getattr(strategy, "encoder", None) or "gcl", getattr(strategy, "embedding", "backbone")
        return lambda: self.embeddings(encoder, kind)

    def _annotate(self, spec, seed, round_index, selection, records, paths: RoundPaths) -> dict:
        if self.settings["oracle"] == "simulated":
            oracle = SimulatedOracle(self.cache, spec.label_kind, self.index.num_classes, self.index.ignore_index,
                                     self.settings["synthesize_scribbles"], seed=self.settings["seed"])
            return oracle.annotate(records)
        oracle = HumanOracle(self.cache, self.index.num_classes, spec.label_kind, self.index.ignore_index)
        annotations: dict = {}
        for k in range(round_index + 1):
            round_paths = self.paths.round(spec.name, seed - self.settings["seed"], k)
            added = [self.records[i] for i in read_json(round_paths.selection)["added"]]
            annotations.update(self._human_round(oracle, added, round_paths))
        return annotations

    def _human_round(self, oracle: HumanOracle, added, paths: RoundPaths) -> dict:
        volumes = {v["id"]: v for v in self.splits["train"].volumes}
        if is_main_process() and not (paths.request_dir / "request.csv").is_file():
            oracle.export(added, volumes, paths.request_dir)
        deadline = time.monotonic() + self.annotation_wait
        # Rank 0 looks for the expert's files and tells the others, so all ranks stop or go on together.
        while missing := broadcast_object(oracle.missing(added, paths.annotation_dir) if is_main_process() else None):
            if broadcast_object(time.monotonic() >= deadline):
                raise AnnotationPending(
                    f"waiting for annotations: the slices listed in {paths.request_dir / 'request.csv'} need labels; "
                    f"write {len(missing)} label file(s) such as {missing[0]} (the source image's grid, "
                    f"labels 0..{self.index.num_classes - 1} on the requested slices) and run the same command again"
                )
            time.sleep(min(5.0, max(0.1, deadline - time.monotonic())))
        return oracle.load(added, paths.annotation_dir)

    def _train(self, spec, seed, round_index, fraction, records, annotations, paths: RoundPaths) -> dict:
        from ..segmentation import iterations_for, train_round, train_volume_round

        settings = dict(self.settings["segmentation"])
        network = settings.pop("network", None)
        scale = settings.pop("iterations_scale", 60000)
        minimum = settings.pop("min_iterations", 200)
        num_models = settings.pop("models_per_round", 5)
        settings.setdefault("tensorboard", True)  # TensorBoard logs per round unless switched off
        iterations = iterations_for(fraction, scale, minimum)
        if paths.training.is_file():
            summary = read_json(paths.training)
            model = load_model(paths.models / "best_model.pt", summary["network_spec"], self.device)
            return {**summary, "model": model}
        architecture = network_spec(network, spec.unit, spec.label_kind, self.index.channels,
                                    self.index.num_classes, settings.get("network_kwargs") if spec.unit == "slice" else {})
        if is_main_process() and paths.models.exists():
            shutil.rmtree(paths.models)  # an interrupted training restarts from scratch (same seeds)
        train_seed = derive_seed(seed, "train", round_index)
        common = {"output_dir": paths.models, "num_classes": self.index.num_classes, "iterations": iterations,
                  "num_models": num_models, "seed": train_seed, "device": self.device,
                  "num_workers": self.num_workers, "progress": self.progress, **settings}
        if spec.unit == "volume":
            # Volumes differ in depth: one per batch; 2D network options do not apply to the 3D UNet.
            for key in ("batch_size", "network_kwargs", "val_batch_size"):
                common.pop(key, None)
            volumes = sorted({r["volume"] for r in records})
            train_set = VolumeDataset([v for v in self.splits["train"].volumes if v["id"] in volumes], self.cache)
            result = train_volume_round(train_set, self.val_volumes, **common)
        else:
            key = "label" if spec.label_kind == "full" else "scribble"
            train_set = SliceDataset(records, self.cache, keys=("image", key), annotations=annotations)
            result = train_round(train_set, self.val_volumes, label_kind=spec.label_kind,
                                 network=architecture["name"], ignore_index=self.index.ignore_index, **common)
        summary = {"val_dice": result.best_val_dice, "val_dice_models": result.val_dice,
                   "best_index": result.best_index, "iterations": result.iterations,
                   "network_spec": architecture, "seconds": result.seconds}
        _write_json(paths.training, summary)
        return {**summary, "model": result.model}

    def _cost(self, spec, records) -> float:
        return annotation_cost(len(records), spec.label_kind if spec.unit == "slice" else "full",
                               self.settings["scribble_cost"])

    def _load_models(self, paths: RoundPaths) -> list[torch.nn.Module]:
        return load_round_models(paths.root, device=self.device)

    # embeddings -------------------------------------------------------------------------------
    def embeddings(self, encoder: str = "gcl", kind: str = "backbone") -> np.ndarray:
        """Embeddings of the training pool by encoder ``encoder``, in pool order:
        ``kind="backbone"`` the (N, F) pooled features g(x), ``"projection"`` the (N, P)
        projection-head outputs. The encoder is trained once per run directory (resuming
        from its last epoch) and both arrays are cached on disk. Distributed, the encoder
        trains on every rank (DDP) and each rank embeds a share of the pool; every rank
        returns the whole array."""
        from ..contrastive import embed, load_embeddings, project, save_embeddings, train_encoder

        if kind not in ("backbone", "projection"):
            raise ConfigError(f"embeddings: kind must be 'backbone' or 'projection', got {kind!r}")
        if (encoder, kind) not in self._embeddings:
            folder = self.paths.encoder_dir(encoder)
            settings = self._encoder_settings(encoder)
            dataset = SliceDataset(self.pool, self.cache, keys=("image",))
            if (folder / "embeddings.npy").is_file():
                ids, features = load_embeddings(folder)
                if ids != self.pool_ids:
                    raise ConfigError(f"{folder}: embeddings of another training pool; use a new output_dir")
                model = None
            else:
                kwargs = {"num_workers": self.num_workers, **_encoder_kwargs(settings)}
                model = train_encoder(dataset, self.pool, folder, device=self.device, seed=self.settings["seed"],
                                      progress=self.progress and not self._worker, **kwargs)
                features = embed(model, dataset, device=self.device, progress=self.progress and not self._worker)
                save_embeddings(folder, self.pool_ids, features)
            self._embeddings[(encoder, "backbone")] = features
            if kind == "projection":
                self._embeddings[(encoder, kind)] = project(folder, features, model)
        return self._embeddings[(encoder, kind)]

    # results -----------------------------------------------------------------------------------
    def collect_rows(self) -> list[dict]:
        """Metrics of every finished round, in strategy, repeat, round order."""
        rows = []
        for spec in self.specs:
            for repeat in range(self.settings["repeats"]):
                for round_index in range(len(self.budgets)):
                    paths = self.paths.round(spec.name, repeat, round_index)
                    if paths.done:
                        rows.append(read_json(paths.metrics))
        return rows


def _write_json(path: Path, content: Any) -> None:
    # Rank 0 writes the loop's state; a later collective orders the write before any other
    # rank's read (the next step's broadcast or gather, or the barrier before collect_rows).
    if is_main_process():
        atomic_write_json(path, content)


def _encoder_kwargs(settings: Mapping) -> dict:
    """Map the bundle's encoder settings onto :func:`~alseg_monai.contrastive.train_encoder`."""
    from ..contrastive import ContrastiveObjective

    settings = {k: v for k, v in settings.items() if not (k == "num_workers" and v is None)}
    weights = dict(settings.pop("weights", {}))
    temperature = settings.pop("temperature", 0.5)
    if weights or temperature != 0.5:
        settings["objective"] = ContrastiveObjective(**{f"{k}_weight": v for k, v in weights.items()},
                                                     temperature=temperature)
    return settings


def _check_choice(key: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ConfigError(f"{key}={value!r}; expected one of {list(choices)}")


def _check_bool(key: str, value: Any) -> bool:
    # The bundle CLI (fire) passes `--progress false` as the string "false", which
    # bool() would read as True.
    if not isinstance(value, (bool, np.bool_)):
        raise ConfigError(f"{key}={value!r}; expected a JSON boolean, true or false (not a string)")
    return bool(value)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _strategy_specs(strategies, options: dict, label_kind: str, unit: str) -> list[StrategySpec]:
    if isinstance(strategies, str):
        strategies = [strategies]
    specs = []
    for item in strategies:
        if isinstance(item, str):
            spec = StrategySpec(item, item, label_kind, unit, dict(options.get(item, {})))
        elif isinstance(item, Mapping):
            item = dict(item)
            strategy = item.pop("strategy", item.get("name"))
            name = item.pop("name", strategy if isinstance(strategy, str) else type(strategy).__name__)
            spec = StrategySpec(name, strategy, item.pop("label_kind", label_kind), item.pop("unit", unit),
                                {**options.get(strategy, {}), **item} if isinstance(strategy, str) else item)
        elif hasattr(item, "select"):
            spec = StrategySpec(getattr(item, "name", type(item).__name__), item, label_kind, unit)
        else:
            raise ConfigError(f"strategies: {item!r} is neither a strategy name, a dict nor an object with select()")
        _check_choice(f"strategies[{spec.name}].label_kind", spec.label_kind, LABEL_KINDS)
        _check_choice(f"strategies[{spec.name}].unit", spec.unit, UNITS)
        specs.append(spec)
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ConfigError(f"strategies: names {names} repeat; give each entry a distinct 'name'")
    if specs:
        from ..selection import available_strategies

        known = set(available_strategies())
        for spec in specs:
            if isinstance(spec.strategy, str) and spec.unit == "slice" and spec.strategy not in known:
                raise ConfigError(f"strategies: unknown strategy {spec.strategy!r}; known: {sorted(known)}")
    return specs


def _spec_settings(spec: StrategySpec, strategy: Any) -> dict:
    """What a strategy's rounds depend on: its class, label kind, unit and every knob of
    its object (defaults included, so a changed default also refuses to resume)."""
    knobs = {k: v for k, v in vars(strategy).items() if not k.startswith("_") and k != "progress"}
    return {"strategy": f"{type(strategy).__module__}.{type(strategy).__qualname__}", "label_kind": spec.label_kind,
            "unit": spec.unit, "options": knobs}


def _check_selection(name: str, added: Sequence[str], labelled: Sequence[str], budget: int,
                     records: Mapping[str, Any]) -> None:
    problems = []
    if len(added) != budget:
        problems.append(f"{len(added)} ids for a budget of {budget}")
    if len(set(added)) != len(added):
        problems.append("repeated ids")
    if set(added) & set(labelled):
        problems.append("ids already labelled")
    unknown = [i for i in added if i not in records]
    if unknown:
        problems.append(f"ids not in the pool such as {unknown[0]!r}")
    if problems:
        raise AlsegError(f"strategy {name!r} returned an invalid selection: {'; '.join(problems)}")
