"""The alseg MONAI Label app's tasks: slice-level strategies, the train task, the infer task,
and the slice registry they share (see docs/monailabel.md)."""

from __future__ import annotations

from .config import AppConfig
from .embeddings import EncoderEmbeddings
from .registry import SliceRegistry
from .volumes import VolumeCache


class AppState:
    """What the tasks of one app process share: settings, registry, volume and embedding caches."""

    def __init__(self, config: AppConfig, datastore=None) -> None:
        self.config = config
        self.registry = SliceRegistry(config.registry_path)
        self.volumes = VolumeCache(config.image_size, config.intensity)
        self.embeddings = EncoderEmbeddings(config)
        self.datastore = datastore

    def datastore_info(self, image_id: str) -> dict:
        return self.datastore.get_image_info(image_id) if self.datastore is not None else {}


__all__ = ["AppConfig", "AppState", "EncoderEmbeddings", "SliceRegistry", "VolumeCache"]
