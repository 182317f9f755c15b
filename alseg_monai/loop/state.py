"""The on-disk state of an AL run, written after every step so a run can resume.

Layout of ``output_dir``::

    settings.json                        the experiment settings (a resumed run must match)
    splits.json                          patients of each split
    encoder/                             the GCL encoder: checkpoints, embeddings, projections
    encoder_<name>/                      each other encoder the strategies use (e.g. ntxent)
    <strategy>/repeat_<r>/round_<k>/
        selection.json                   ids added this round, all labelled ids, pick diagnostics
        annotation_request/              human-in-the-loop export (annotate mode)
        annotations/                     the expert's label files (annotate mode)
        models/                          per-model checkpoints, best_model.pt
        training.json                    validation Dice per model, best index, iterations
        test_dice.csv                    per-volume, per-class test Dice
        metrics.json                     the round's result; its presence marks the round done
    results.csv, results.md, curves.png, picks.png, embeddings.png, overlay.png

Every file is written atomically, so a step's file either exists complete or not at
all; a step whose file is missing is redone from its inputs, which are all on disk.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..utils.io import atomic_write_json, read_json

__all__ = []


@dataclass(frozen=True)
class RoundPaths:
    """Files of one round of one strategy and repeat."""

    root: Path

    @property
    def selection(self) -> Path:
        return self.root / "selection.json"

    @property
    def request_dir(self) -> Path:
        return self.root / "annotation_request"

    @property
    def annotation_dir(self) -> Path:
        return self.root / "annotations"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def training(self) -> Path:
        return self.root / "training.json"

    @property
    def test_csv(self) -> Path:
        return self.root / "test_dice.csv"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def done(self) -> bool:
        return self.metrics.is_file()


@dataclass(frozen=True)
class RunPaths:
    """Files of a whole run under ``root``."""

    root: Path

    @property
    def settings(self) -> Path:
        return self.root / "settings.json"

    @property
    def splits(self) -> Path:
        return self.root / "splits.json"

    @property
    def encoder(self) -> Path:
        return self.encoder_dir("gcl")

    def encoder_dir(self, name: str) -> Path:
        """Folder of encoder ``name``: ``encoder/`` for the GCL encoder, else ``encoder_<name>/``."""
        return self.root / ("encoder" if name == "gcl" else f"encoder_{name}")

    def round(self, strategy: str, repeat: int, round_index: int) -> RoundPaths:
        return RoundPaths(self.root / strategy / f"repeat_{repeat}" / f"round_{round_index}")

    @property
    def results_csv(self) -> Path:
        return self.root / "results.csv"

    @property
    def results_md(self) -> Path:
        return self.root / "results.md"

    @property
    def curves(self) -> Path:
        return self.root / "curves.png"

    @property
    def picks_png(self) -> Path:
        return self.root / "picks.png"

    @property
    def embeddings_png(self) -> Path:
        return self.root / "embeddings.png"

    @property
    def overlay(self) -> Path:
        return self.root / "overlay.png"


# Settings a resumed run may change without invalidating finished steps ("repeats" too:
# repeat r's seed is seed + r whatever the count, so a study extended with repeats reuses its finished ones).
_FREE_SETTINGS = {"output_dir", "device", "num_workers", "progress", "strategies", "report", "annotation_wait",
                  "workers", "repeats"}
# The same inside a section: logging switches that leave every result unchanged.
_FREE_SUBSETTINGS = {"segmentation": {"tensorboard"}}


def _comparable(key: str, value: Any) -> Any:
    free = _FREE_SUBSETTINGS.get(key)
    if free and isinstance(value, dict):
        return {k: v for k, v in value.items() if k not in free}
    return value


# Settings recorded per strategy name: a resumed run may add or drop strategies, but a
# strategy it shares with the recorded run must keep its settings (or its finished rounds
# would be reused for other options).
_PER_STRATEGY = "strategy_settings"


def check_settings(path: Path, settings: dict[str, Any]) -> None:
    """Record ``settings`` at ``path``, or, when a run already recorded different ones,
    raise :class:`ConfigError` naming the changed keys (resuming would mix results).
    """
    settings = dict(settings)
    if path.is_file():
        recorded = read_json(path)
        changed = sorted(
            key for key in set(recorded) | set(settings)
            if key not in _FREE_SETTINGS and key != _PER_STRATEGY
            and _comparable(key, recorded.get(key)) != _comparable(key, settings.get(key))
        )
        old, new = recorded.get(_PER_STRATEGY, {}), settings.get(_PER_STRATEGY, {})
        changed += [f"{_PER_STRATEGY}[{name}]" for name in sorted(set(old) & set(new)) if old[name] != new[name]]
        if changed:
            raise ConfigError(
                f"{path.parent}: this output_dir holds a run with different settings for {changed}; "
                "use a new output_dir, or restore those settings to resume"
            )
        settings[_PER_STRATEGY] = {**old, **new}
    atomic_write_json(path, settings)
