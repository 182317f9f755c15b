"""The app's settings: MONAI Label ``--conf`` options over the alseg_monai bundle.

Every component the app trains or selects with comes from the bundle
(``bundles/slice_active_learning/configs/active_learning.json``, plus the files named
by ``--conf bundle_configs``), read with :func:`alseg_monai.loop.load_config`, so the
app and the bundle's experiments use one definition: the GCL encoder (``encoders#gcl``),
the Coreset options (``strategy_options``), the segmentation network, loss, optimiser,
schedule and augmentation, the slice size and the intensity normalisation.

``--conf`` options (strings on the command line, all optional):

==================== ==================================================================
bundle_configs       comma-separated bundle configs after active_learning.json, names
                     relative to the bundle's configs folder (e.g. ``data/phantom.json``)
image_size           slice size S the networks see (bundle ``image_size``)
num_classes          classes, background included (bundle ``num_classes``)
labels               comma-separated foreground class names, in class order
feature_dim          encoder width (bundle ``encoder_def#feature_dim``; 512 = ResNet-18)
encoder_epochs       GCL encoder epochs (bundle ``encoder#epochs``)
encoder_batch_size   GCL batch size (bundle ``sampler#batch_size``; None: the paper's)
iterations           segmentation iterations per training (default: the bundle's rule,
                     ``max(min_iterations, iterations_scale x annotated fraction)``)
batch_size           segmentation batch size (bundle ``segmentation#batch_size``)
budget               slices per active-learning answer (default 4)
scope                ``volume`` (default) or ``global``, see lib/strategies.py
pending_ttl          seconds a served, not yet labelled slice stays reserved (3600)
existing_labels      how a label that arrives without a request is read: ``nonempty``
                     (default: its non-empty slices are annotated), ``all`` or ``ignore``
patient_regex        regex whose group 1 of an image id is the patient (default
                     ``^(.+?)_frame\\d+$``; no match: the image is its own patient)
seed                 seed of the encoder, the segmentation model and random picks
device               ``cpu`` / ``cuda`` (default: CUDA when available)
state_dir            where the app keeps its state (default ``<studies>/.alseg``)
==================== ==================================================================
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

logger = logging.getLogger(__name__)

DEFAULT_BUDGET = 4
DEFAULT_PENDING_TTL = 3600
DEFAULT_PATIENT_REGEX = r"^(.+?)_frame\d+$"
SCOPES = ("volume", "global")
EXISTING_LABELS = ("nonempty", "all", "ignore")
# Conf options that override a bundle key, and how the string is read.
_BUNDLE_OVERRIDES = {
    "image_size": ("image_size", int),
    "num_classes": ("num_classes", int),
    "feature_dim": ("encoder_def#feature_dim", int),
    "encoder_epochs": ("encoder#epochs", int),
    "encoder_batch_size": ("sampler#batch_size", int),
    "batch_size": ("segmentation#batch_size", int),
    "seed": ("seed", int),
    "device": ("device", str),
}


def _parse(value: Any, kind: type) -> Any:
    if value is None or isinstance(value, kind):
        return value
    text = str(value).strip()
    if text.lower() in ("", "none", "null"):
        return None
    return kind(text)


@dataclass
class AppConfig:
    """The resolved settings and the bundle's components (built lazily, once per process)."""

    studies: Path
    conf: Mapping[str, Any]
    parser: Any = field(repr=False, default=None)
    _cache: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_conf(cls, studies: str | os.PathLike, conf: Mapping[str, Any] | None) -> "AppConfig":
        from alseg_monai.loop import load_config

        conf = dict(conf or {})
        files = [f.strip() for f in str(conf.get("bundle_configs", "") or "").split(",") if f.strip()]
        overrides: dict[str, Any] = {"progress": False}
        for option, (key, kind) in _BUNDLE_OVERRIDES.items():
            value = _parse(conf.get(option), kind)
            if value is not None:
                overrides[key] = value
        parser = load_config(files, overrides)
        config = cls(Path(studies), conf, parser)
        config.state_dir.mkdir(parents=True, exist_ok=True)
        logger.info("alseg app: bundle configs %s, overrides %s, state in %s", files, overrides, config.state_dir)
        return config

    # ---- plain settings --------------------------------------------------------------
    def get(self, key: str) -> Any:
        """A bundle value (parsed, so ``$`` expressions are evaluated), cached."""
        if key not in self._cache:
            self._cache[key] = self.parser.get_parsed_content(key)
        return self._cache[key]

    def option(self, name: str, kind: type, default: Any) -> Any:
        value = _parse(self.conf.get(name), kind)
        return default if value is None else value

    @property
    def state_dir(self) -> Path:
        return Path(self.option("state_dir", str, str(self.studies / ".alseg")))

    @property
    def image_size(self) -> int:
        return int(self.get("image_size"))

    @property
    def num_classes(self) -> int:
        return int(self.get("num_classes"))

    @property
    def in_channels(self) -> int:
        return int(self.get("in_channels"))

    @property
    def intensity(self) -> dict:
        return dict(self.get("intensity"))

    @property
    def seed(self) -> int:
        return int(self.get("seed"))

    @property
    def device(self) -> str:
        return str(self.get("device"))

    @property
    def budget(self) -> int:
        return self.option("budget", int, DEFAULT_BUDGET)

    @property
    def scope(self) -> str:
        scope = self.option("scope", str, "volume")
        if scope not in SCOPES:
            raise ValueError(f"--conf scope: expected one of {SCOPES}, got {scope!r}")
        return scope

    @property
    def pending_ttl(self) -> float:
        return self.option("pending_ttl", float, float(DEFAULT_PENDING_TTL))

    @property
    def existing_labels(self) -> str:
        policy = self.option("existing_labels", str, "nonempty")
        if policy not in EXISTING_LABELS:
            raise ValueError(f"--conf existing_labels: expected one of {EXISTING_LABELS}, got {policy!r}")
        return policy

    @property
    def label_names(self) -> dict[str, int]:
        """Foreground class name -> class index (background 0 is not listed)."""
        names = self.option("labels", str, None)
        if names:
            names = [n.strip() for n in names.split(",") if n.strip()]
        else:
            from alseg_monai.data.records import class_names

            names = list(class_names(str(self.get("dataset_kind")), self.num_classes))
        if len(names) != self.num_classes - 1:
            raise ValueError(f"--conf labels: {len(names)} names for {self.num_classes - 1} foreground classes")
        return {name: index for index, name in enumerate(names, start=1)}

    def patient_of(self, image_id: str, info: Mapping[str, Any] | None = None) -> str:
        """The patient of an image: its datastore info's ``patient``, else ``patient_regex``'s
        group 1, else the image itself."""
        if info and info.get("patient"):
            return str(info["patient"])
        match = re.match(self.option("patient_regex", str, DEFAULT_PATIENT_REGEX), image_id)
        return match.group(1) if match and match.groups() else image_id

    # ---- bundle components -----------------------------------------------------------
    def encoder_spec(self):
        """The bundle's GCL encoder (``encoders#gcl``: network, Eq. 5 loss, group sampler,
        augmentation, epochs, optimiser)."""
        return self.get("encoders#gcl")

    def strategy_options(self, name: str) -> dict:
        options = self.parser.get("strategy_options", {}).get(name, {})
        return dict(self.parser.get_parsed_content(f"strategy_options#{name}")) if options else {}

    def segmentation_components(self) -> dict[str, Any]:
        """Network factory, loss, optimiser and schedule factories, augmentation, batch size,
        the iteration rule and AMP, as the bundle's ``trainer`` uses them."""
        segmentation = self.get("segmentation")
        return {
            "network_def": self.get("network_def"),
            "loss": self.get("loss"),
            "optimizer": self.get("optimizer"),
            "lr_scheduler": self.get("lr_scheduler"),
            "train_transforms": self.get("train_transforms"),
            "batch_size": int(segmentation["batch_size"]),
            "iterations_scale": int(segmentation["iterations_scale"]),
            "min_iterations": int(segmentation["min_iterations"]),
            "amp": segmentation.get("amp"),
        }

    # ---- files -------------------------------------------------------------------------
    @property
    def model_dir(self) -> Path:
        return self.state_dir / "model"

    @property
    def encoder_path(self) -> Path:
        return self.model_dir / "encoder.pt"

    @property
    def encoder_summary_path(self) -> Path:
        return self.model_dir / "encoder.json"

    @property
    def segmentation_path(self) -> Path:
        return self.model_dir / "segmentation.pt"

    @property
    def segmentation_summary_path(self) -> Path:
        return self.model_dir / "segmentation.json"

    @property
    def labels_dir(self) -> Path:
        """The merged slice labels the app trains on (``<image id>.nii.gz``)."""
        return self.state_dir / "labels"

    @property
    def registry_path(self) -> Path:
        return self.state_dir / "slices.json"

    def describe(self) -> dict:
        """JSON-able summary for the app's info."""
        return json.loads(json.dumps({
            "image_size": self.image_size, "num_classes": self.num_classes, "budget": self.budget,
            "scope": self.scope, "pending_ttl": self.pending_ttl, "existing_labels": self.existing_labels,
            "state_dir": str(self.state_dir), "device": self.device,
        }))
