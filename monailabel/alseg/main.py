"""MONAI Label app: slice-based active learning with GCL + Coreset (alseg_monai).

Start it (see docs/monailabel.md)::

    monailabel start_server --app monailabel/alseg --studies /path/to/niftis \
        --conf bundle_configs data/phantom.json

Strategies ``gcl_coreset``, ``coreset``, ``random`` answer a volume and the slices of it
to annotate; ``PUT /datastore/label`` marks the served slices as annotated; the train
task ``segmentation`` trains the GCL encoder and the segmentation network on the
annotated slices; the infer task ``segmentation`` returns the 3D segmentation.
"""

from __future__ import annotations

import logging

from monailabel.interfaces.app import MONAILabelApp
from monailabel.interfaces.exception import MONAILabelError, MONAILabelException

from lib import AppConfig, AppState
from lib.annotations import sync_labels
from lib.infer import SegmentationInfer
from lib.strategies import Coreset, GCLCoreset, RandomSlices
from lib.train import SegmentationTrain

logger = logging.getLogger(__name__)

MODEL = "segmentation"


class MyApp(MONAILabelApp):
    def __init__(self, app_dir, studies, conf):
        self.config = AppConfig.from_conf(studies, conf)
        self.state = AppState(self.config)
        super().__init__(
            app_dir=app_dir,
            studies=studies,
            conf=conf,
            name="alseg",
            description="Slice-based active learning: GCL encoder + Coreset picks the slices to annotate",
            version="1",
            labels=self.config.label_names,
        )
        self.state.datastore = self.datastore()

    def init_infers(self):
        return {MODEL: SegmentationInfer(self.state)}

    def init_trainers(self):
        return {MODEL: SegmentationTrain(self.state)}

    def init_strategies(self):
        return {s.name: s for s in (GCLCoreset(self.state), Coreset(self.state), RandomSlices(self.state))}

    def init_scoring_methods(self):
        return {}

    def info(self):
        meta = super().info()
        meta["alseg"] = {**self.config.describe(),
                         "annotated_slices": sum(len(v) for v in self.state.registry.annotated().values())}
        return meta

    def on_save_label(self, image_id, label_id):
        """A label was saved: the slices it covers become annotated (lib/annotations.py)."""
        super().on_save_label(image_id, label_id)
        try:
            done = sync_labels(self.datastore(), self.config, self.state.registry, self.state.volumes, [image_id],
                               strict=True)
        except ValueError as err:
            raise MONAILabelException(MONAILabelError.INVALID_INPUT, f"label not used: {err}") from err
        result = done.get(image_id)
        if result is None:
            return {"alseg": {"note": "no new final label to process"}}
        return {"alseg": result}
