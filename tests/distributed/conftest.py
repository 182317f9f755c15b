"""Fixtures of the distributed tests."""

from __future__ import annotations

import socket

import pytest

from alseg_monai import utils


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def one_rank_group(monkeypatch):
    """A real one-process gloo group in this process (as torchrun would set it up), so the
    collective code paths run; destroyed afterwards."""
    for name, value in {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
                        "MASTER_PORT": str(_free_port())}.items():
        monkeypatch.setenv(name, value)
    device = utils.init_distributed(backend="gloo")
    try:
        yield device
    finally:
        utils.destroy_distributed()
