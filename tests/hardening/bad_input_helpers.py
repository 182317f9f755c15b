"""Running the bundle in-process (the code path of ``python -m monai.bundle run``) and
finding the project's error in what it raises."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from alseg_monai import AlsegError

BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "slice_active_learning"
CONFIGS = BUNDLE / "configs"


def alseg_error(err: BaseException) -> AlsegError | None:
    """The first AlsegError in ``err``'s chain (MONAI wraps errors in RuntimeError)."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, AlsegError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def bundle_error(configs: list[str], **overrides) -> AlsegError:
    """Run the bundle with ``monai.bundle.scripts.run`` and return the AlsegError it raised."""
    from monai.bundle.scripts import run

    hook = sys.excepthook  # the bundle's initialize installs its error hook: keep this process's
    try:
        with pytest.raises(BaseException) as info:
            run(config_file=[str(CONFIGS / c) for c in configs], meta_file=str(CONFIGS / "metadata.json"),
                bundle_root=str(BUNDLE), **overrides)
    finally:
        sys.excepthook = hook
    found = alseg_error(info.value)
    assert found is not None, f"expected an AlsegError, got {info.value!r}"
    return found
