"""Slice embeddings with the current GCL encoder, cached per volume.

The encoder is the bundle's ``encoder_def`` (a :class:`alseg_monai.contrastive.SimCLREncoder`)
with the weights the train task saved (``<state_dir>/model/encoder.pt``); before the
first training it is the seeded, untrained network, and answers say so
(``"encoder": "untrained"``). Embeddings are the pooled backbone features g(x)
(:func:`alseg_monai.contrastive.embed`), recomputed when the encoder file changes.
"""

from __future__ import annotations

import logging
import os
import threading

import numpy as np
import torch

from alseg_monai.contrastive import embed
from alseg_monai.utils import derive_seed
from alseg_monai.utils.fresh import build_network

logger = logging.getLogger(__name__)


class _SliceItems(torch.utils.data.Dataset):
    def __init__(self, image: np.ndarray) -> None:
        self.image = image  # (C, S, S, D)

    def __len__(self) -> int:
        return int(self.image.shape[-1])

    def __getitem__(self, z: int) -> dict:
        return {"image": self.image[..., z]}


class EncoderEmbeddings:
    """Embeddings of every slice of a volume with the app's current encoder."""

    def __init__(self, config) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._encoder = None
        self._stamp = None
        self._trained = False
        self._features: dict[str, tuple[tuple, np.ndarray]] = {}

    def _encoder_stamp(self):
        path = self.config.encoder_path
        if not path.is_file():
            return None
        stat = os.stat(path)
        return (stat.st_mtime_ns, stat.st_size)

    def encoder(self):
        """(encoder, trained?) with the weights on disk now."""
        stamp = self._encoder_stamp()
        with self._lock:
            if self._encoder is None or stamp != self._stamp:
                spec = self.config.encoder_spec()
                network = build_network(spec.network, derive_seed(self.config.seed, "encoder"))
                trained = stamp is not None
                if stamp is not None:
                    state = torch.load(self.config.encoder_path, map_location="cpu", weights_only=True)
                    try:
                        network.load_state_dict(state)
                    except RuntimeError as err:  # another encoder_def than at training: train again
                        logger.warning("alseg: %s does not fit the configured encoder, using it untrained "
                                       "until the next training: %s", self.config.encoder_path, err)
                        network = build_network(spec.network, derive_seed(self.config.seed, "encoder"))
                        trained = False
                network.eval()
                self._encoder, self._stamp, self._trained = network, stamp, trained
                self._features.clear()
                logger.info("alseg: encoder %s", "loaded from " + str(self.config.encoder_path) if trained else
                            "untrained (no encoder.pt yet; run the train task)")
            return self._encoder, self._trained

    def features(self, volume) -> np.ndarray:
        """(D, F) float32 embeddings of the volume's slices."""
        encoder, _ = self.encoder()
        key = (id(volume.image), volume.image.shape)
        with self._lock:
            cached = self._features.get(volume.image_id)
            if cached is not None and cached[0] == key:
                return cached[1]
        feats = embed(encoder, _SliceItems(volume.image), batch_size=64, device=self.config.device, progress=False)
        with self._lock:
            self._features[volume.image_id] = (key, feats)
        return feats
