"""Benchmark of K-Center Greedy (issue 4): speed against the textbook implementation,
identical picks, cost per pick against one pass over the features, and peak memory on
a million points.

Run from the repository root (the default run takes a few minutes on one core)::

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python -m benchmarks.bench_kcenter

Features are synthetic "embedding-like" rows (see :func:`embedding_like`): real slice
embeddings are not available offline, and their structure (volumes of adjacent slices
on a low-dimensional manifold) is what the pruning exploits. Structureless Gaussian
noise, where nothing can be pruned, is measured too as the worst case.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import pairwise_distances

from alseg_monai.selection import kcenter_greedy

ROOT = Path(__file__).resolve().parents[1]


def embedding_like(n: int, dim: int, seed: int = 0, latent: int = 32, slices_per_volume: int = 100) -> np.ndarray:
    """(n, dim) float32 rows shaped like slice embeddings.

    Each volume of ``slices_per_volume`` consecutive rows has a random centre and
    direction in a ``latent``-dimensional space, slice z sits at centre + (z / Z)
    direction + small noise (adjacent slices are close), and a fixed random linear map
    to ``dim`` dimensions, a ReLU and noise make the features (like pooled CNN features).
    Generated in chunks, so the peak memory is the output plus ~100 MB.
    """
    rng = np.random.default_rng(seed)
    volumes = max(1, n // slices_per_volume)
    centres = rng.standard_normal((volumes, latent), dtype=np.float32)
    directions = rng.standard_normal((volumes, latent), dtype=np.float32)
    mapping = (rng.standard_normal((latent, dim)) / np.sqrt(latent)).astype(np.float32)
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, 100_000):
        rows = np.arange(start, min(start + 100_000, n))
        volume = np.minimum(rows // slices_per_volume, volumes - 1)
        position = ((rows % slices_per_volume) / slices_per_volume).astype(np.float32)[:, None]
        points = centres[volume] + position * directions[volume]
        points += 0.05 * rng.standard_normal(points.shape, dtype=np.float32)
        block = points @ mapping
        np.maximum(block, 0, out=block)
        block += 0.02 * rng.standard_normal(block.shape, dtype=np.float32)
        out[rows] = block
    return out


def textbook_kcenter(features: np.ndarray, labelled: np.ndarray, budget: int) -> tuple[np.ndarray, float, float]:
    """Sener and Savarese's implementation (sklearn ``pairwise_distances`` to every new centre).

    Returns (picks, seconds for the initial distances, seconds per pick).
    """
    start = time.perf_counter()
    mind = np.full(len(features), np.inf, np.float32)
    for chunk in range(0, len(labelled), 100):  # the N x |L| matrix in slices of 100 columns
        mind = np.minimum(mind, pairwise_distances(features, features[labelled[chunk : chunk + 100]]).min(1))
    initial = time.perf_counter() - start
    picks = []
    start = time.perf_counter()
    for _ in range(budget):
        pick = int(np.argmax(mind))
        picks.append(pick)
        mind = np.minimum(mind, pairwise_distances(features, features[[pick]])[:, 0])
    return np.array(picks), initial, (time.perf_counter() - start) / budget


def one_pass_seconds(features: np.ndarray, repeats: int = 5) -> dict[str, float]:
    """Median time of one read of the features (``sum``) and of one matrix-vector product."""
    vector = features[0].copy()
    timings = {}
    for name, run in {
        "sum": lambda: features.sum(),
        "matvec (einsum)": lambda: np.einsum("ij,j->i", features, vector),
        "matvec (BLAS)": lambda: features @ vector,
    }.items():
        run()
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            run()
            samples.append(time.perf_counter() - start)
        timings[name] = float(np.median(samples))
    return timings


def time_ours(features: np.ndarray, labelled: np.ndarray, budget: int) -> tuple[np.ndarray, float, float]:
    """(picks, seconds of the initial search (a 1-pick run), seconds per further pick)."""
    start = time.perf_counter()
    kcenter_greedy(features, labelled, 1, device="cpu")
    initial = time.perf_counter() - start
    start = time.perf_counter()
    picks = kcenter_greedy(features, labelled, budget, device="cpu")
    total = time.perf_counter() - start
    return picks, initial, (total - initial) / max(1, budget - 1)


def compare(name: str, features: np.ndarray, num_labelled: int, budget: int, baseline_picks: int) -> dict:
    labelled = np.random.default_rng(1).choice(len(features), num_labelled, replace=False)
    passes = one_pass_seconds(features)
    picks, initial, per_pick = time_ours(features, labelled, budget)
    reference, ref_initial, ref_per_pick = textbook_kcenter(features, labelled, baseline_picks)
    same = int(np.sum(picks[:baseline_picks] == reference))
    ours_total = initial + per_pick * (budget - 1)
    ref_total = ref_initial + ref_per_pick * budget
    row = {
        "data": name,
        "shape": f"{features.shape[0]:,} x {features.shape[1]}",
        "labelled": num_labelled,
        "picks": budget,
        "ours_s": ours_total,
        "ours_initial_s": initial,
        "ours_per_pick_ms": per_pick * 1e3,
        "textbook_s_extrapolated": ref_total,
        "textbook_initial_s": ref_initial,
        "textbook_per_pick_ms": ref_per_pick * 1e3,
        "speedup": ref_total / ours_total,
        "per_pick_speedup": ref_per_pick / per_pick,
        "identical_picks": f"{same}/{baseline_picks}",
        "pass_ms": {k: v * 1e3 for k, v in passes.items()},
        "per_pick_over_sum_pass": per_pick / passes["sum"],
        "per_pick_over_matvec_pass": per_pick / min(passes["matvec (einsum)"], passes["matvec (BLAS)"]),
    }
    print(json.dumps(row, indent=1))
    return row


def peak_child(n: int, dim: int, num_labelled: int, budget: int) -> None:
    """Runs in a subprocess: prints JSON with its own peak RSS after a K-Center Greedy run."""
    start = time.perf_counter()
    features = embedding_like(n, dim, seed=3)
    generated = time.perf_counter() - start
    rss_data = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    labelled = np.random.default_rng(1).choice(n, num_labelled, replace=False)
    start = time.perf_counter()
    picks = kcenter_greedy(features, labelled, budget, device="cpu")
    seconds = time.perf_counter() - start
    print(
        json.dumps(
            {
                "shape": f"{n:,} x {dim}",
                "labelled": num_labelled,
                "picks": len(picks),
                "distinct": len(set(picks.tolist())),
                "seconds": seconds,
                "generate_seconds": generated,
                "features_bytes": features.nbytes,
                "peak_rss_before_bytes": rss_data,
                "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            }
        )
    )


def measure_peak(n: int, dim: int, num_labelled: int, budget: int) -> dict:
    command = [
        sys.executable,
        "-m",
        "benchmarks.bench_kcenter",
        "--peak-child",
        str(n),
        str(dim),
        str(num_labelled),
        str(budget),
    ]
    output = subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True, encoding="utf-8", errors="replace").stdout
    row = json.loads(output.strip().splitlines()[-1])
    print(json.dumps(row, indent=1))
    return row


def markdown(rows: list[dict], peak: dict, command: str) -> str:
    from benchmarks.common import machine_summary

    lines = [
        "## K-Center Greedy (`alseg_monai.selection.kcenter_greedy`)",
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine_summary()}; one core (`OMP_NUM_THREADS=1`).",
        "",
        "Textbook = Sener and Savarese's implementation (`sklearn.metrics.pairwise_distances(features, "
        "features[[new]])` per pick, float32 minima), run for its first K picks (K = the denominator of "
        "'identical picks'), its time extrapolated to the full budget when K is smaller; identical picks "
        "compares those K picks with ours. One pass = a full read of the features (`sum`) or a "
        "matrix-vector product (the work of one distance update per pick). Embedding-like data: slice-like "
        "structure (see `embedding_like`), where the pruning works; Gaussian noise: the worst case, nothing "
        "to prune, one full pass per pick.",
        "",
        "| data | features | labelled | picks | ours (s) | ours: initial (s) / per pick (ms) "
        "| textbook (s) | textbook: initial (s) / per pick (ms) | speed-up | identical picks "
        "| one pass: sum / matvec (ms) | per pick / one pass (sum, matvec) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        matvec = min(r["pass_ms"]["matvec (einsum)"], r["pass_ms"]["matvec (BLAS)"])
        lines.append(
            f"| {r['data']} | {r['shape']} | {r['labelled']:,} | {r['picks']:,} | {r['ours_s']:.1f} | "
            f"{r['ours_initial_s']:.1f} / {r['ours_per_pick_ms']:.2f} | {r['textbook_s_extrapolated']:.0f} | "
            f"{r['textbook_initial_s']:.1f} / {r['textbook_per_pick_ms']:.1f} | {r['speedup']:.0f}x total, "
            f"{r['per_pick_speedup']:.0f}x per pick | {r['identical_picks']} | "
            f"{r['pass_ms']['sum']:.1f} / {matvec:.1f} | "
            f"{r['per_pick_over_sum_pass']:.2f}, {r['per_pick_over_matvec_pass']:.2f} |"
        )
    lines += [
        "",
        f"Large run (embedding-like, {peak['shape']}, {peak['labelled']:,} labelled, {peak['picks']:,} picks, in a "
        f"subprocess): {peak['seconds']:.0f} s, peak RSS {peak['peak_rss_bytes'] / 2**30:.2f} GiB "
        f"(features {peak['features_bytes'] / 2**30:.2f} GiB; the process peaked at "
        f"{peak['peak_rss_before_bytes'] / 2**30:.2f} GiB before the run, imports and data generation included); "
        f"{peak['distinct']:,} distinct picks.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--labelled", type=int, default=1000)
    parser.add_argument("--picks", type=int, default=5000)
    parser.add_argument("--baseline-picks", type=int, default=200, help="textbook picks timed (then extrapolated)")
    parser.add_argument("--gaussian-picks", type=int, default=1000, help="picks on the structureless worst case")
    parser.add_argument("--peak-n", type=int, default=1_000_000)
    parser.add_argument("--peak-dim", type=int, default=128)
    parser.add_argument("--peak-picks", type=int, default=10_000)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    parser.add_argument("--peak-child", nargs=4, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peak_child:
        peak_child(*args.peak_child)
        return
    rows = [
        compare("embedding-like", embedding_like(args.n, args.dim), args.labelled, args.picks, args.baseline_picks),
        compare(
            "Gaussian noise (worst case)",
            np.random.default_rng(0).standard_normal((args.n, args.dim), dtype=np.float32),
            args.labelled,
            args.gaussian_picks,
            min(args.baseline_picks, args.gaussian_picks),
        ),
    ]
    peak = measure_peak(args.peak_n, args.peak_dim, args.labelled, args.peak_picks)
    command = "OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python -m benchmarks.bench_kcenter " + " ".join(sys.argv[1:])
    text = markdown(rows, peak, command.strip())
    print(text)
    if not args.no_write:
        from benchmarks.common import write_section

        write_section("kcenter", text)


if __name__ == "__main__":
    main()
