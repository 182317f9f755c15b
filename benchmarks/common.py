"""Shared helpers of the benchmark scripts: each script prints its figures and
records them in its own section of docs/benchmarks.md."""

from __future__ import annotations

import fcntl
import platform
import re
import time
from pathlib import Path

import torch

BENCHMARKS_MD = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
_HEADER = (
    "# Benchmarks\n\n"
    "Figures measured by the scripts in `benchmarks/`; each section names the command "
    "that produced it. Re-run a script to refresh its section.\n"
)


def machine_summary() -> str:
    """One line describing where the figures were measured."""
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"{device}, torch {torch.__version__}, {time.strftime('%Y-%m-%d')}"
    )


def write_section(name: str, markdown: str) -> None:
    """Replace (or append) the section ``name`` of docs/benchmarks.md with ``markdown``.

    Sections are delimited by HTML comments, so scripts can refresh their own figures
    without touching the others'. A lock file serialises concurrent scripts.
    """
    from alseg_monai.utils import atomic_write_text

    BENCHMARKS_MD.parent.mkdir(parents=True, exist_ok=True)
    begin, end = f"<!-- begin:{name} -->", f"<!-- end:{name} -->"
    block = f"{begin}\n{markdown.strip()}\n{end}"
    with open(BENCHMARKS_MD.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        text = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else _HEADER
        pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
        if pattern.search(text):
            text = pattern.sub(lambda _: block, text)
        else:
            text = text.rstrip("\n") + "\n\n" + block + "\n"
        atomic_write_text(BENCHMARKS_MD, text)
