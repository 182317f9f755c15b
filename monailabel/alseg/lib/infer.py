"""The infer task: the current segmentation model's 3D segmentation of a volume.

``POST /infer/segmentation?image=<id>`` preprocesses the volume as the bundle does
(intensity normalisation, slices resized to ``image_size``), segments it slice by slice
with the last trained network (:func:`alseg_monai.evaluation.predict`), resizes the
class map back to the stored slice size and returns it as NIfTI with the volume's affine
(``output=image``: the file alone; default: the file and the JSON params).
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time

import torch
from monailabel.interfaces.exception import MONAILabelError, MONAILabelException
from monailabel.interfaces.tasks.infer_v2 import InferTask, InferType

from alseg_monai.evaluation import predict, save_prediction_nifti
from alseg_monai.utils.fresh import build_network

logger = logging.getLogger(__name__)


class SegmentationInfer(InferTask):
    """3D segmentation with the app's segmentation network (2D, slice by slice)."""

    def __init__(self, state) -> None:
        config = state.config
        super().__init__(type=InferType.SEGMENTATION, labels=config.label_names, dimension=3,
                         description="Slice-by-slice segmentation with the network trained on the annotated slices")
        self.state = state
        self._lock = threading.Lock()
        self._model = None
        self._stamp = None

    def is_valid(self) -> bool:
        return True  # listed from the start; a call before any training says what to do

    def get_path(self, validate=True):
        path = self.state.config.segmentation_path
        return str(path) if path.is_file() or not validate else None

    def model(self):
        path = self.state.config.segmentation_path
        if not path.is_file():
            raise MONAILabelException(MONAILabelError.INFERENCE_ERROR,
                                      "no segmentation model trained yet: annotate the served slices, then run "
                                      "POST /train/segmentation")
        stat = os.stat(path)
        stamp = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            if self._model is None or stamp != self._stamp:
                parts = self.state.config.segmentation_components()
                network = build_network(parts["network_def"], 0)
                try:
                    network.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
                except RuntimeError as err:
                    raise MONAILabelException(
                        MONAILabelError.MODEL_IMPORT_ERROR,
                        f"{path} does not fit the configured network (was --conf changed since training?); "
                        f"train again: {err}") from err
                self._model = network.to(self.state.config.device).eval()
                self._stamp = stamp
            return self._model

    def __call__(self, request):
        start = time.perf_counter()
        image_path = request["image"]
        if not isinstance(image_path, str) or not os.path.exists(image_path):
            raise MONAILabelException(MONAILabelError.INVALID_INPUT, f"image {image_path!r} is not a file")
        model = self.model()
        image_id = os.path.basename(image_path)
        volume = self.state.volumes.load(image_id, image_path, keep=False)
        loaded = time.perf_counter()
        prediction = predict(model, torch.as_tensor(volume.image), volume.shape[:2])
        inferred = time.perf_counter()
        fd, out = tempfile.mkstemp(suffix=".nii.gz", prefix="alseg_seg_")
        os.close(fd)
        save_prediction_nifti(prediction, volume.affine, out)
        end = time.perf_counter()
        return out, {
            "label_names": self.labels,
            "shape": [int(s) for s in prediction.shape],
            "image": image_id,
            "latencies": {"pre": round(loaded - start, 3), "infer": round(inferred - loaded, 3),
                          "post": round(end - inferred, 3), "total": round(end - start, 3)},
        }
