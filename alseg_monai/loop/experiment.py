"""The active-learning experiment: the strategies' loops over a dataset, composed from
the bundle's components, with every step's result on disk (resumable).

Paper protocol (section 3.2, REFERENCE.md): slices are the unit of annotation; a round
adds ``int(N x fraction) - |labelled|`` slices; each contrastive encoder is trained once
per experiment and shared by every strategy that uses its embeddings; each round trains
``models_per_round`` segmentation models and reports the test 3D Dice of the one with
the best validation Dice; repeats differ by seed.

The experiment composes; the work is done by its parts: :class:`~.data.ExperimentData`
(dataset, split, slice cache), the encoders (:class:`~alseg_monai.contrastive.EncoderSpec`),
the strategies, the oracle, the round trainers
(:class:`~alseg_monai.segmentation.RoundTrainer`, one per label kind and unit) and, per
(strategy, repeat) chain, an :class:`~.loop.ActiveLearningLoop`.

Distributed (``torchrun``, docs/distributed.md): every rank runs the same loops.
Training, embedding and scoring are shared across ranks by the parts; each selection
runs on every rank and rank 0's picks are broadcast, so all ranks train on the same
labelled set. Rank 0 writes every file; a collective (a broadcast, a gather or a
barrier) always separates a rank-0 write from another rank's check or read of that file.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data import SliceDataset, VolumeDataset
from ..errors import ConfigError
from ..evaluation import annotation_cost, evaluate_volumes
from ..segmentation.trainer import iterations_for
from ..utils import (
    atomic_write_json,
    barrier,
    clean_stale_temp_files,
    derive_seed,
    is_main_process,
    main_process_first,
    main_process_only,
    rank,
    read_json,
    world_size,
)
from ..utils.describe import describe
from ..utils.flags import as_bool
from ..utils.threads import check_threads
from .budgets import check_budgets, round_sizes
from .data import ExperimentData
from .diagnostics import pick_diagnostics
from .loop import ActiveLearningLoop, RoundTraining
from .models import load_round_models, load_state
from .oracle import AnnotationPending, HumanOracle, SimulatedOracle
from .progress import RunProgress
from .report import write_run_report
from .state import RoundPaths, RunPaths, check_settings

__all__ = ["ActiveLearningExperiment"]

logger = logging.getLogger(__name__)

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
        unit: ``slice`` or ``volume`` (random whole volumes and a 3D network, Fig. 2).
        options: keyword arguments of a registered strategy.
    """

    name: str
    strategy: Any
    label_kind: str = "full"
    unit: str = "slice"
    options: dict = field(default_factory=dict)


class ActiveLearningExperiment:
    """A complete slice-based AL experiment (the bundle's ``experiment``).

    Every argument comes from the bundle config (``configs/active_learning.json`` holds
    the defaults); :func:`~alseg_monai.loop.load_experiment` builds one from it in Python.

    Args:
        data: the dataset, its split and preprocessing.
        output_dir: the run directory (state, checkpoints, reports).
        budgets: cumulative labelled fractions (paper 2, 3, 4, 5, 10, 15, 20, 40 %).
        strategies: names, ``{"name", "strategy", "label_kind", "unit", **options}`` dicts, or
            strategy objects (``select(context, budget)``) to compare.
        strategy_options: per registered strategy name, keyword arguments.
        label_kind: default label kind, ``full`` or ``scribble``.
        unit: default selection unit, ``slice`` or ``volume``.
        repeats: AL repeats; repeat ``r`` uses seed ``seed + r``.
        seed: the base seed.
        encoders: name -> :class:`~alseg_monai.contrastive.EncoderSpec`; a strategy names
            the one whose embeddings it uses (``gcl``, ``ntxent``).
        trainers: the round trainers by label kind (``full``, ``scribble``) and for the
            volume unit (``volume``): :class:`~alseg_monai.segmentation.RoundTrainer`.
        iterations: ``{"scale", "minimum"}``: a round trains ``max(minimum, scale x
            fraction)`` iterations (:func:`~alseg_monai.segmentation.iterations_for`).
        evaluation: ``convention`` (paper / monai), ``bootstrap`` samples, ``bootstrap_unit``.
        scribble_cost: cost of a scribbled slice in full-mask units (paper 1/15).
        oracle: ``simulated`` (dataset labels) or ``human`` (export, wait, import).
        synthesize_scribbles: draw scribbles from masks where the dataset has none.
        annotation_wait: seconds a human oracle waits for the expert's files before
            stopping the run (0: stop at once; run again to continue).
        device: ``cpu`` or ``cuda``.
        num_workers: data-loader workers.
        progress: progress bars (on a terminal).
        report: write tables and plots after the loops.
        workers: processes that run the (strategy, repeat) chains side by side, each with
            ``torch.get_num_threads() // workers`` threads (1: in this process). Small
            networks use many threads poorly, so 2 one-thread workers train about 1.6x
            faster than one two-thread process on 2 cores. Simulated oracle only.
        encoder_threads: at most this many CPU threads train and apply the encoders (None:
            the process's). One keeps the training's speed when other processes compete
            for the cores; on a quiet machine the process's threads are faster
            (docs/benchmarks.md). The thread count changes the order of floating-point
            sums, so other counts give other weights, embeddings and picks; it is not in
            ``settings.json`` because a run directory trains its encoders once and resumes
            from their cached embeddings, whatever the count of a later call.

    The run's ``settings.json`` records every setting that changes results, the
    components described (:func:`~alseg_monai.utils.describe`) and every strategy's
    options included; a resumed run with a different one is refused, naming it.
    """

    def __init__(
        self,
        data: ExperimentData,
        output_dir: str,
        budgets: Sequence[float],
        strategies: Sequence[Any],
        strategy_options: Mapping[str, Mapping],
        label_kind: str,
        unit: str,
        repeats: int,
        seed: int,
        encoders: Mapping[str, Any],
        trainers: Mapping[str, Any],
        iterations: Mapping[str, int],
        evaluation: Mapping,
        scribble_cost: float,
        oracle: str,
        synthesize_scribbles: bool,
        annotation_wait: float,
        device: str,
        num_workers: int,
        progress: bool,
        report: bool = True,
        workers: int = 1,
        encoder_threads: int | None = None,
    ) -> None:
        _check_choice("label_kind", label_kind, LABEL_KINDS)
        _check_choice("unit", unit, UNITS)
        _check_choice("oracle", oracle, ORACLES)
        if isinstance(repeats, bool) or int(repeats) < 1:
            raise ConfigError(f"repeats={repeats}; expected at least 1")
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ConfigError(f"workers={workers!r}; expected a positive integer")
        if workers > 1 and oracle != "simulated":
            raise ConfigError(f"workers={workers}: parallel chains need the simulated oracle (oracle={oracle!r}); "
                              "use workers 1 with a human annotator")
        missing = sorted({"full", "scribble", "volume"} - set(trainers))
        if missing:
            raise ConfigError(f"trainers: no round trainer for {missing}; expected trainers for 'full', 'scribble' "
                              "and 'volume'")
        self.data, self.paths = data, RunPaths(Path(output_dir))
        self.encoders, self.trainers = dict(encoders), dict(trainers)
        self.iterations = {"scale": int(iterations["scale"]), "minimum": int(iterations["minimum"])}
        self.specs = _strategy_specs(strategies, dict(strategy_options or {}), label_kind, unit)
        self.settings = _jsonable({
            "dataset_kind": data.dataset_kind, "dataset_dir": data.dataset_dir, "dataset_options": data.dataset_options,
            "split": data.split, "num_classes": data.num_classes, "ignore_index": data.ignore_index,
            "image_size": data.image_size, "val_transforms": data.preprocessing_key,
            "budgets": check_budgets(budgets), "label_kind": label_kind,
            "unit": unit, "repeats": int(repeats), "seed": int(seed), "iterations": self.iterations,
            "evaluation": dict(evaluation), "scribble_cost": float(scribble_cost), "oracle": oracle,
            "synthesize_scribbles": as_bool(synthesize_scribbles, "synthesize_scribbles"),
            "trainers": {name: trainer.describe() for name, trainer in sorted(self.trainers.items())},
            "encoders": describe(self.encoders),
            "strategy_settings": {spec.name: _spec_settings(spec, self.strategy(spec)) for spec in self.specs},
        })
        self.budgets = self.settings["budgets"]
        for spec in self.specs:
            self._check_ensemble(spec)
        self.annotation_wait = float(annotation_wait)
        self.device = torch.device(device)
        self.num_workers = int(num_workers)
        self.progress = as_bool(progress, "progress")
        self.write_report = as_bool(report, "report")
        self.workers = int(workers)
        self.encoder_threads = check_threads("encoder_threads", encoder_threads)
        self._prepared = False
        self._embeddings: dict[tuple[str, str], np.ndarray] = {}
        self._worker = False

    def _check_ensemble(self, spec: StrategySpec) -> None:
        needed = getattr(self.strategy(spec), "min_models", 0)
        have = self.trainer(spec).models_per_round
        if needed > have:
            raise ConfigError(f"strategies: {spec.name!r} needs an ensemble of at least {needed} models per round; "
                              f"segmentation#models_per_round is {have}")

    # set-up -------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Read and split the dataset, check every setting against it, then preprocess
        every volume once (all input errors surface here, before any training).

        Distributed, rank 0 prepares first (writing the run's settings, split and slice
        cache); the other ranks then read them without writing."""
        if self._prepared:
            return
        with main_process_first():
            self._prepare()
        self._prepared = True

    def _prepare(self) -> None:
        root, writer = self.paths.root, is_main_process() and not self._worker
        if writer:
            root.mkdir(parents=True, exist_ok=True)
            removed = clean_stale_temp_files(root)
            if removed:
                logger.info("removed %d temporary files left by an interrupted run", len(removed))
        self.data.read()
        round_sizes(self.budgets, len(self.data.pool))
        for name in self.encoders_used():
            self._check_encoder_batches(name)
        if writer:
            # Recorded once the inputs passed their checks, so a run stopped by bad input can
            # be retried with corrected settings in the same output_dir.
            check_settings(self.paths.settings, self.settings)
            if self.paths.splits.is_file() and read_json(self.paths.splits) != self.data.patients:
                raise ConfigError(f"{self.paths.splits}: the dataset's split changed since this run started; "
                                  "use a new output_dir")
            atomic_write_json(self.paths.splits, self.data.patients)
        self.data.load()

    @property
    def pool(self) -> list[dict]:
        """The training pool's slice records."""
        return self.data.pool

    @property
    def pool_ids(self) -> list[str]:
        return self.data.pool_ids

    @property
    def records(self) -> dict[str, dict]:
        return self.data.records

    @property
    def cache(self):
        return self.data.cache

    def strategy(self, spec: StrategySpec):
        """The strategy object of ``spec``: built from the registry when named; random whole
        volumes for the volume unit."""
        from ..selection import RandomVolumesStrategy, get_strategy

        if spec.unit == "volume":
            return RandomVolumesStrategy()
        if hasattr(spec.strategy, "select"):
            return spec.strategy
        return get_strategy(spec.strategy, **spec.options)

    def trainer(self, spec: StrategySpec):
        """The round trainer of ``spec``: by its label kind, or the volume one."""
        return self.trainers["volume" if spec.unit == "volume" else spec.label_kind]

    # encoders ---------------------------------------------------------------------------
    def encoders_used(self) -> list[str]:
        """Names of the encoders whose embeddings the strategies ask for, in first-use order."""
        names = [self._encoder_of(spec) for spec in self.specs]
        return list(dict.fromkeys(name for name in names if name is not None))

    def _encoder_of(self, spec: StrategySpec) -> str | None:
        if spec.unit != "slice":
            return None
        # A user's own strategy (no `encoder` attribute) may call context.embeddings(): the GCL one.
        return getattr(self.strategy(spec), "encoder", "gcl")

    def encoder_spec(self, name: str):
        """Encoder ``name`` for this pool. On datasets with one volume per patient (CHAOS,
        MS-CMR, DAVIS) the patient group equals the volume group, so the patient grouping
        and its loss term are dropped with a warning, as the paper did."""
        if name not in self.encoders:
            raise ConfigError(f"encoder {name!r}: not one of the experiment's encoders {sorted(self.encoders)}")
        spec = self.encoders[name]
        volumes = Counter(v["patient"] for v in self.data.splits["train"].volumes)
        if "patient" in spec.groupings() and max(volumes.values()) == 1:
            logger.warning("every training patient has one volume: the patient grouping duplicates the volume "
                           "grouping, so encoder %s drops it and its loss term", name)
            spec = spec.without_patient_grouping()
        return spec

    def _check_encoder_batches(self, name: str) -> None:
        """Build one epoch of encoder ``name``'s batches now, so a batch size that is not a
        multiple of the group size fails before any training."""
        spec = self.encoder_spec(name)
        sampler = spec.sampler(self.data.pool, seed=self.settings["seed"], num_replicas=world_size(), rank=rank())
        if len(sampler) == 0:
            raise ConfigError(f"sampler#batch_size: the {len(self.data.pool)} training slices give no batch of "
                              f"{sampler.batch_size} per process ({world_size()} process(es)) for encoder {name!r}; "
                              "use a smaller batch")

    def embeddings(self, encoder: str = "gcl", kind: str = "backbone") -> np.ndarray:
        """Embeddings of the training pool by encoder ``encoder``, in pool order:
        ``kind="backbone"`` the (N, F) pooled features g(x), ``"projection"`` the (N, P)
        projection-head outputs. The encoder is trained once per run directory (resuming
        from its last epoch) and both arrays are cached on disk. Distributed, the encoder
        trains on every rank (DDP) and each rank embeds a share of the pool; every rank
        returns the whole array."""
        from ..contrastive import embed, load_embeddings, project, save_embeddings

        if kind not in ("backbone", "projection"):
            raise ConfigError(f"embeddings: kind must be 'backbone' or 'projection', got {kind!r}")
        self.prepare()
        if (encoder, kind) not in self._embeddings:
            folder = self.paths.encoder_dir(encoder)
            dataset = SliceDataset(self.pool, self.cache, keys=("image",))
            model = None
            if (folder / "embeddings.npy").is_file():
                ids, features = load_embeddings(folder)
                if ids != self.pool_ids:
                    raise ConfigError(f"{folder}: embeddings of another training pool; use a new output_dir")
            else:
                quiet = self.progress and not self._worker
                model = self.encoder_spec(encoder).train(dataset, self.pool, folder, self.settings["seed"],
                                                         device=self.device, num_workers=self.num_workers,
                                                         progress=quiet, threads=self.encoder_threads)
                features = embed(model, dataset, device=self.device, progress=quiet, threads=self.encoder_threads)
                save_embeddings(folder, self.pool_ids, features)
            self._embeddings[(encoder, "backbone")] = features
            if kind == "projection":
                self._embeddings[(encoder, kind)] = project(folder, features, model)
        return self._embeddings[(encoder, kind)]

    def _prepare_embeddings(self) -> None:
        """Train every encoder the strategies use and cache the embeddings they ask for."""
        for spec in self.specs:
            name = self._encoder_of(spec)
            if name is not None:
                self.embeddings(name, getattr(self.strategy(spec), "embedding", "backbone"))

    # the loops --------------------------------------------------------------------------
    def run(self) -> list[dict]:
        """Run (or resume) every strategy, repeat and round; then write the report.

        Returns:
            The round metrics (rows of ``results.csv``); empty when stopped to wait for
            a human annotation.
        """
        self.prepare()
        chains = [(index, repeat) for index in range(len(self.specs)) for repeat in range(self.settings["repeats"])]
        progress = self.progress_handler()
        try:
            if self.workers > 1:
                from .parallel import run_chains

                self._prepare_embeddings()  # every worker reads them; none may train an encoder
                progress.start()  # after the encoders, which are no round's time
                run_chains(self, chains, self.workers, handlers=[progress])
            else:
                progress.start()
                for index, repeat in chains:
                    self.run_chain(index, repeat, handlers=[progress])
        except AnnotationPending as pending:
            logger.warning("%s", pending)
            return []
        barrier()  # rank 0 has written the last round's metrics
        rows = self.collect_rows()
        if self.write_report:
            main_process_only(write_run_report)(self, rows)
        return rows

    def __getstate__(self) -> dict:
        # A worker process re-reads the dataset and the slice cache from disk (prepare())
        # rather than receiving them pickled.
        state = dict(self.__dict__)
        state.pop("_pool_diagnostics", None)
        state.update(_prepared=False, _embeddings={})
        return state

    def progress_handler(self) -> RunProgress:
        """The run's :class:`~.progress.RunProgress`: its total is every strategy x repeat x
        budget, the rounds already finished on disk counted as done."""
        rounds = list(self._round_paths())
        return RunProgress(total=len(rounds), done=sum(paths.done for paths in rounds))

    def run_chain(self, spec_index: int, repeat: int, handlers: Sequence[Callable[[dict], Any]] = ()) -> list[dict]:
        """Run (or resume) every round of one strategy's repeat, in budget order; ``handlers``
        get each round finished (see :class:`ActiveLearningLoop`)."""
        self.prepare()
        return self.loop(self.specs[spec_index], repeat, handlers).run()

    def loop(self, spec: StrategySpec, repeat: int, handlers: Sequence[Callable[[dict], Any]] = ()
             ) -> ActiveLearningLoop:
        """The :class:`ActiveLearningLoop` of one strategy's repeat, with its parts and round ``handlers``."""
        seed = self.settings["seed"] + repeat
        trainer = self.trainer(spec)
        return ActiveLearningLoop(
            name=spec.name,
            strategy=self.strategy(spec),
            context=lambda labelled, round_index: self._context(spec, seed, round_index, labelled),
            oracle=self._oracle(spec),
            trainer=lambda records, annotations, paths, round_index, fraction: self._train(
                trainer, spec, records, annotations, paths, derive_seed(seed, "train", round_index), fraction),
            evaluator=self.evaluate_model,
            describe=self._describe,
            records=self.records,
            budgets=self.budgets,
            paths=lambda round_index: self.paths.round(spec.name, repeat, round_index),
            cost=lambda records: self._cost(spec, records),
            info={"unit": spec.unit, "label_kind": spec.label_kind, "repeat": repeat, "seed": seed},
            handlers=handlers,
        )

    def _context(self, spec: StrategySpec, seed: int, round_index: int, labelled: list[str]):
        from ..selection import SelectionContext

        strategy = self.strategy(spec)
        encoder, kind = getattr(strategy, "encoder", None) or "gcl", getattr(strategy, "embedding", "backbone")
        previous = self.paths.round(spec.name, seed - self.settings["seed"], round_index - 1)
        return SelectionContext(
            pool=self.pool,
            labelled=labelled,
            round=round_index,
            seed=derive_seed(seed, "select", round_index),
            num_classes=self.data.num_classes,
            device=self.device,
            embeddings=lambda: self.embeddings(encoder, kind),
            images=lambda: self.cache.images(self.pool),
            models=(lambda: self._round_models(spec, previous)) if round_index > 0 else (lambda: []),
        )

    def _round_models(self, spec: StrategySpec, paths: RoundPaths) -> list[torch.nn.Module]:
        return load_round_models(paths.root, self.trainer(spec).build, device=self.device)

    def _oracle(self, spec: StrategySpec):
        index = self.data.index
        if self.settings["oracle"] == "simulated":
            return SimulatedOracle(self.cache, spec.label_kind, index.num_classes, index.ignore_index,
                                   self.settings["synthesize_scribbles"], seed=self.settings["seed"])
        return HumanOracle(self.cache, index.num_classes, spec.label_kind, index.ignore_index,
                           volumes=self.data.volumes, wait=self.annotation_wait)

    def _describe(self, selection: dict, annotations: Mapping) -> dict:
        """What was picked (position, patients, volumes, classes present): this round's
        picks, all labelled slices, and the pool."""
        def label_of(record):
            label = self.cache.slice(record).get("label")
            if label is None:
                label = annotations.get(record["id"], {}).get("label")
                return None if label is None else np.asarray(label)
            return label[0]

        def describe(ids):
            return pick_diagnostics([self.records[i] for i in ids], self.data.depth, label_of,
                                    self.data.index.class_names)

        if getattr(self, "_pool_diagnostics", None) is None:
            self._pool_diagnostics = describe(self.pool_ids)
        return {"added": describe(selection["added"]), "labelled": describe(selection["labelled"]),
                "pool": self._pool_diagnostics}

    def _train(self, trainer, spec: StrategySpec, records, annotations, paths: RoundPaths, seed: int,
               fraction: float) -> RoundTraining:
        if paths.training.is_file():
            summary = read_json(paths.training)
            model = load_state(trainer.build(), paths.models / "best_model.pt", self.device)
            return RoundTraining(model, summary["val_dice"], summary["iterations"])
        iterations = iterations_for(fraction, self.iterations["scale"], self.iterations["minimum"])
        if spec.unit == "volume":
            volumes = sorted({r["volume"] for r in records})
            train_set = VolumeDataset([self.data.volumes[v] for v in volumes], self.cache)
        else:
            key = "label" if spec.label_kind == "full" else "scribble"
            train_set = SliceDataset(records, self.cache, keys=("image", key), annotations=annotations)
        logger.info("%s: training %d model(s) on %d %s for %d iterations", paths.root,
                    trainer.models_per_round, len(train_set), "volumes" if spec.unit == "volume" else "slices",
                    iterations)
        result = trainer.train(train_set, self.data.val_volumes, paths.models, self.data.num_classes, iterations,
                               seed, summary={"label_kind": spec.label_kind, "unit": spec.unit,
                                              "train_items": len(train_set)})
        summary = {"val_dice": result.best_val_dice, "val_dice_models": result.val_dice,
                   "best_index": result.best_index, "iterations": result.iterations, "seconds": result.seconds,
                   "label_kind": spec.label_kind, "unit": spec.unit}
        if is_main_process():
            atomic_write_json(paths.training, summary)
        return RoundTraining(result.model, result.best_val_dice, result.iterations)

    def _cost(self, spec: StrategySpec, records) -> float:
        return annotation_cost(len(records), spec.label_kind if spec.unit == "slice" else "full",
                               self.settings["scribble_cost"])

    def evaluate_model(self, model, csv_path):
        """Test 3D Dice of ``model`` (per-volume, per-class CSV written to ``csv_path``)."""
        self.prepare()
        settings = self.settings["evaluation"]
        return evaluate_volumes(model, self.data.test_volumes, self.data.num_classes,
                                convention=settings.get("convention", "paper"), csv_path=csv_path)

    def run_labelled(self, name: str, ids: Sequence[str], label_kind: str | None = None, trainer=None) -> dict:
        """Train and evaluate one round on the given labelled ``ids`` (the ``train.json``
        workflow) in ``<output_dir>/<name>`` with ``trainer`` (default: the experiment's
        round trainer of the label kind); returns its metrics.

        Raises:
            ConfigError: ids that are not slices of the training split.
        """
        self.prepare()
        unknown = [i for i in ids if i not in self.records]
        if unknown:
            raise ConfigError(f"labelled_list: {len(unknown)} ids are not slices of the training split, "
                              f"e.g. {unknown[:3]}")
        spec = StrategySpec(name, "manual", label_kind or self.settings["label_kind"], "slice")
        paths = RoundPaths(self.paths.root / name)
        start = time.perf_counter()
        records = [self.records[i] for i in ids]
        annotations = self._oracle(spec).reveal(records) if self.settings["oracle"] == "simulated" else {}
        training = self._train(trainer or self.trainer(spec), spec, records, annotations, paths, self.settings["seed"],
                               len(ids) / len(self.pool))
        evaluation = self.evaluate_model(training.model, paths.test_csv)
        metrics = {"strategy": name, "unit": "slice", "label_kind": spec.label_kind,
                   "budget": len(ids) / len(self.pool), "labelled": len(records),
                   "cost": self._cost(spec, records), "dice": evaluation.mean_dice,
                   "dice_per_class": [float(v) for v in evaluation.per_class],
                   "dice_per_volume": [float(v) for v in evaluation.per_volume], "val_dice": training.val_dice,
                   "iterations": training.iterations, "seconds": time.perf_counter() - start,
                   "labelled_ids": list(ids)}
        if is_main_process():
            atomic_write_json(paths.metrics, metrics)
        return metrics

    # results -----------------------------------------------------------------------------------
    def collect_rows(self) -> list[dict]:
        """Metrics of every finished round, in strategy, repeat, round order."""
        return [read_json(paths.metrics) for paths in self._round_paths() if paths.done]

    def _round_paths(self) -> Iterator[RoundPaths]:
        """The :class:`RoundPaths` of every round of the run, in strategy, repeat, round order."""
        for spec in self.specs:
            for repeat in range(self.settings["repeats"]):
                for round_index in range(len(self.budgets)):
                    yield self.paths.round(spec.name, repeat, round_index)


def _check_choice(key: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ConfigError(f"{key}={value!r}; expected one of {list(choices)}")


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _spec_settings(spec: StrategySpec, strategy: Any) -> dict:
    """What a strategy's rounds depend on: its class, label kind, unit and every knob of
    its object (defaults included, so a changed default also refuses to resume)."""
    return {**_strategy_knobs(strategy), "label_kind": spec.label_kind, "unit": spec.unit}


def _strategy_knobs(strategy: Any) -> dict:
    """``{"strategy": class path, "options": knobs}``; a knob holding strategies (a
    schedule's stages) holds theirs, so ``progress`` is left out at every level."""

    def value(v: Any) -> Any:
        if hasattr(v, "select") and not isinstance(v, type):
            return _strategy_knobs(v)
        if isinstance(v, (list, tuple)):
            return [value(item) for item in v]
        return v

    knobs = {k: value(v) for k, v in vars(strategy).items() if not k.startswith("_") and k != "progress"}
    return {"strategy": f"{type(strategy).__module__}.{type(strategy).__qualname__}", "options": knobs}


def _stages_with_options(stages: Any, options: dict) -> Any:
    """A schedule's stages, each named stage given the run's ``strategy_options`` of its
    strategy under its own settings (as a strategy of the list gets them)."""
    if not isinstance(stages, Sequence) or isinstance(stages, (str, Mapping)):
        return stages  # ScheduledStrategy names the problem
    return [{**options.get(stage["strategy"], {}), **stage}
            if isinstance(stage, Mapping) and isinstance(stage.get("strategy"), str) else stage for stage in stages]


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
        if spec.strategy == "schedule":
            spec.options["stages"] = _stages_with_options(spec.options.get("stages"), options)
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
