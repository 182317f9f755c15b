"""Phantom benchmark: generation time, the paper's slice-deviation statistic, scribble coverage.

Generates a fresh phantom (20 patients at 128 x 128 by default), reads it back with
nibabel, and reports

* the wall time of ``make_phantom`` (and of the scribble synthesis inside it, re-run alone);
* the mean pairwise absolute deviation of normalised slices over the dataset, within
  patients, within volumes and between adjacent slices, next to the paper's ACDC
  figures (Sec. 3.2.1: 0.217 / 0.159 / 0.166 / 0.115);
* the fraction of pixels the synthetic scribbles annotate.

Run: ``OMP_NUM_THREADS=1 python benchmarks/bench_phantom.py [--num-patients 20 --image-size 128]``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_summary, write_section  # noqa: E402

from alseg_monai.data.phantom import make_phantom, slice_deviation_statistics  # noqa: E402
from alseg_monai.data.scribbles import annotated_fraction, scribble_from_mask  # noqa: E402

PAPER = {"overall": 0.217, "patient": 0.159, "volume": 0.166, "adjacent": 0.115}


def read_volumes(root: Path) -> list[dict]:
    volumes = []
    for image_path in sorted(root.glob("patient*/patient*_frame??.nii.gz")):
        stem = str(image_path)[: -len(".nii.gz")]
        volumes.append({
            "patient": image_path.parent.name,
            "image": np.asarray(nib.load(str(image_path)).dataobj),
            "label": np.asarray(nib.load(f"{stem}_gt.nii.gz").dataobj),
            "scribble": np.asarray(nib.load(f"{stem}_scribble.nii.gz").dataobj),
        })
    return volumes


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-patients", type=int, default=20)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-record", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench_phantom_") as tmp:
        start = time.perf_counter()
        root = make_phantom(Path(tmp) / "phantom", args.num_patients, image_size=args.image_size, seed=args.seed,
                            progress=False)
        generation = time.perf_counter() - start
        volumes = read_volumes(root)

    start = time.perf_counter()
    for volume in volumes:
        scribble_from_mask(volume["label"], 4)
    scribble_time = time.perf_counter() - start

    stats = slice_deviation_statistics((v["patient"], v["image"]) for v in volumes)
    fractions = np.array([annotated_fraction(v["scribble"]) for v in volumes])
    annotated = np.concatenate([v["scribble"][v["scribble"] != 4] for v in volumes])
    class_coverage = {
        cls: float(np.mean(np.concatenate([v["scribble"][v["label"] == cls] == cls for v in volumes])))
        for cls in range(4)
    }
    num_slices = sum(v["image"].shape[2] for v in volumes)

    extra = " ".join(argv if argv is not None else sys.argv[1:])
    command = f"OMP_NUM_THREADS=1 python benchmarks/bench_phantom.py {extra}".strip()
    lines = [
        "## Phantom generation and statistics",
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine_summary()}",
        "",
        f"- `make_phantom({args.num_patients} patients, {args.image_size}x{args.image_size}, seed {args.seed})`: "
        f"**{generation:.1f} s** wall ({len(volumes)} volumes, {num_slices} slices, files written and gzipped). "
        f"Scribble synthesis alone, re-run on the {len(volumes)} label volumes: {scribble_time:.1f} s.",
        "",
        "Mean pairwise absolute deviation of normalised slices (clip at the 99th percentile, "
        "min-max per volume), as in paper Sec. 3.2.1:",
        "",
        "| group | phantom | paper (ACDC) |",
        "|---|---|---|",
        *(f"| {key} | {stats[key]:.3f} | {PAPER[key]:.3f} |" for key in ("overall", "patient", "volume", "adjacent")),
        "",
        f"Scribbles (defaults of `scribble_from_mask`): {fractions.mean():.2%} of pixels annotated per volume "
        f"(min {fractions.min():.2%}, max {fractions.max():.2%}); {np.mean(annotated != 0):.0%} of the annotated "
        "pixels are foreground. Share of each class's pixels scribbled: "
        + ", ".join(f"{name} {class_coverage[c]:.1%}" for c, name in enumerate(("bg", "RV", "Myo", "LV")))
        + ".",
    ]
    markdown = "\n".join(lines)
    print(markdown)
    if not args.no_record:
        write_section("phantom", markdown)


if __name__ == "__main__":
    main()
