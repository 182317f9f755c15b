"""Benchmark of selection under CPU contention (issue 14): how much slower K-Center Greedy
(ours and the textbook loop), TypiClust and the encoder's training run while 1 or 2 other
CPU-bound processes compete for the cores.

The script starts the competitors itself (``--load python``: one pure-Python busy loop
per process; ``--load numpy``: repeated sums over an 8 MB array, which also takes memory
bandwidth), each single-threaded, and stops them after each load level, also on error
or Ctrl-C. Under each load it times, in interleaved order:

- ours: :func:`~alseg_monai.selection.kcenter_greedy` as shipped (the whole run single-threaded);
- ours, loop only: only the per-pick loop single-threaded (``kcenter._THREADS = None``), the
  one-off work (norms, principal axes, the initial faiss search) on the process's threads:
  what those threads buy on a quiet machine and cost under contention;
- ours, old threading: the thread pools left alone (``kcenter._THREADS = kcenter._PICK_THREADS
  = None``), the behaviour before issue 14;
- the textbook loop (Sener and Savarese: ``sklearn.metrics.pairwise_distances`` to each
  new centre, :func:`benchmarks.bench_kcenter.textbook_kcenter`);
- TypiClust (:func:`~alseg_monai.selection.typiclust.typiclust_select`, the other per-pick loop
  of selection) as shipped (single-threaded) and with the thread pools left alone;
- the GCL encoder's training (the per-iteration loop behind GCL + Coreset's embeddings:
  the real ignite engine, ResNet-18, batch 9 of 64 x 64 slices, paper objective) with the
  process's threads (``encoder#threads: null``) and with one (the default); ``--encoder-iterations``
  iterations per run, no picks to compare.

Each cell is the median of ``--repeats`` measurements (default 7); a measurement of a
variant that runs shorter than ``--window`` seconds (default 10) is the mean of
back-to-back runs filling that window, and the textbook is timed over its first
``--textbook-picks`` picks (default 300, about 10 s) and extrapolated to the budget, so
every measurement spans a similar time. Slowdown = median under k competitors / median
with none. The process's CPU time is recorded too: CPU time that grows under load is
work the contention adds (threads spinning or waiting, caches refilled); a wall time that
grows with CPU time unchanged is the share of the cores the scheduler gave. Against the
textbook, each repeat's two measurements, taken back to back, give a paired ratio of the
slowdowns; its geometric mean and 95 % interval over the repeats decide the target.
Every run's picks must be identical (the script fails otherwise).

Run from the repository root, on the quiet 2-core machine, with the default threads (no
``OMP_NUM_THREADS``; the point is how the default threading copes)::

    python -m benchmarks.bench_contention --variants ours,textbook,typiclust --out c.md  # ~16 min
    python -m benchmarks.bench_contention --out contention.md            # every variant, ~30 min
    python -m benchmarks.bench_contention --write-docs                   # into docs/benchmarks.md

On a machine with more cores, confine it to two: ``taskset -c 0,1 python -m benchmarks.bench_contention``.
``--quick`` runs tiny sizes in seconds (a check that the script works, no figures).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import numpy as np
import torch

from alseg_monai.selection import kcenter as kcenter_module
from alseg_monai.selection import typiclust as typiclust_module
from alseg_monai.selection.kcenter import kcenter_greedy
from benchmarks.bench_kcenter import embedding_like, textbook_kcenter

# One competitor: a single-threaded CPU-bound loop that exits by itself if its parent dies.
_SPIN = {
    "python": (
        "import os, sys\n"
        "parent = os.getppid()\n"
        "print('ready', flush=True)\n"
        "i = 0\n"
        "while True:\n"
        "    i += 1\n"
        "    if i % 1_000_000 == 0 and os.getppid() != parent:\n"
        "        break\n"
    ),
    "numpy": (
        "import os, sys\n"
        "import numpy as np\n"
        "parent = os.getppid()\n"
        "a = np.random.default_rng(0).random(1 << 20)\n"
        "print('ready', flush=True)\n"
        "i = 0\n"
        "while True:\n"
        "    a.sum()\n"
        "    i += 1\n"
        "    if i % 1000 == 0 and os.getppid() != parent:\n"
        "        break\n"
    ),
}
_ONE_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}

VARIANTS = {
    "ours": "ours, as shipped (single-threaded)",
    "ours-loop": "ours, only the per-pick loop single-threaded",
    "ours-old": "ours, old threading (thread pools left alone)",
    "textbook": "textbook loop (sklearn `pairwise_distances` per pick)",
    "typiclust": "TypiClust, as shipped (single-threaded)",
    "typiclust-old": "TypiClust, old threading (thread pools left alone)",
    "encoder": "GCL encoder training, the process's threads (`encoder#threads` null)",
    "encoder-1": "GCL encoder training, one thread (`encoder#threads` 1, the default)",
}
_KCENTER = ("ours", "ours-loop", "ours-old")


@contextlib.contextmanager
def competitors(count: int, load: str, settle: float) -> Iterator[list[subprocess.Popen]]:
    """``count`` single-threaded CPU-bound processes, running while the block runs;
    killed (and waited for) when it ends, whatever the reason."""
    procs: list[subprocess.Popen] = []
    try:
        for _ in range(count):
            proc = subprocess.Popen([sys.executable, "-c", _SPIN[load]], stdout=subprocess.PIPE,
                                    env={**os.environ, **_ONE_THREAD}, text=True)
            procs.append(proc)
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError(f"competitor process {proc.pid} did not start (exit code {proc.poll()})")
        time.sleep(settle if count else 0.0)  # let the scheduler spread them over the cores
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        for proc in procs:
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()


def _run_ours(features: np.ndarray, labelled: np.ndarray, budget: int, variant: str) -> np.ndarray:
    shipped = kcenter_module._THREADS, kcenter_module._PICK_THREADS
    try:
        if variant in ("ours-loop", "ours-old"):
            kcenter_module._THREADS = None
        if variant == "ours-old":
            kcenter_module._PICK_THREADS = None
        return kcenter_greedy(features, labelled, budget, device="cpu")
    finally:
        kcenter_module._THREADS, kcenter_module._PICK_THREADS = shipped


def _run_typiclust(features: np.ndarray, labelled: np.ndarray, budget: int, variant: str) -> np.ndarray:
    shipped = typiclust_module._THREADS
    try:
        if variant == "typiclust-old":
            typiclust_module._THREADS = None
        return typiclust_module.typiclust_select(features, labelled, budget, seed=0)
    finally:
        typiclust_module._THREADS = shipped


def encoder_runner(threads: int | None, iterations: int) -> Callable[[], tuple[np.ndarray, None]]:
    """A run of ``iterations`` training iterations of the GCL encoder with at most ``threads``
    threads, as ``EncoderSpec.train(threads=...)`` trains it (same engine, objective, sampler)."""
    from alseg_monai.contrastive import ContrastiveObjective
    from alseg_monai.utils.threads import thread_limit
    from benchmarks.bench_contrastive import SyntheticSlices, encoder_trainer, synthetic_records

    records = synthetic_records(400, volumes_per_patient=2, slices_per_volume=10)
    engine, loader = encoder_trainer(records, SyntheticSlices(records, 64), ContrastiveObjective(), batch_size=9)

    def run() -> tuple[np.ndarray, None]:
        with thread_limit(threads):
            # A finished engine starts a fresh run of exactly `iterations` batches.
            engine.run(loader, max_epochs=1, epoch_length=iterations)
        return np.zeros(0, dtype=np.int64), None

    run()  # warm-up: allocator, thread pools
    return run


def timed(run: Callable[[], tuple[np.ndarray, float | None]], window: float) -> tuple[np.ndarray, float, float]:
    """The run's picks, seconds per run and the process's CPU seconds per run.

    Seconds per run: the run's own figure when it gives one, else the mean wall time of
    back-to-back runs filling at least ``window`` seconds (every run's picks checked
    equal). A one-second run under contention measures where the scheduler happened to
    place that second (alone on a core: 1x; sharing one: 2x); the textbook's 30-second
    run averages over the placements, so ours is timed over a window of similar length.
    CPU seconds (``time.process_time``, all the process's threads) are scaled like the
    wall time, so CPU / wall is the share of a core the run got (above 1: several threads).
    """
    start, cpu_start = time.perf_counter(), time.process_time()
    picks, seconds = run()
    runs = 1
    while seconds is None and time.perf_counter() - start < window:
        again, _ = run()
        if not np.array_equal(again, picks):
            raise SystemExit("picks differ between back-to-back runs")
        runs += 1
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    seconds = wall / runs if seconds is None else seconds
    return picks, seconds, seconds * cpu / wall


def paired_ratio(times: dict, variant: str, reference: str, base: int, load: int) -> tuple[float, float, float]:
    """Geometric mean over repeats of ``variant``'s slowdown over ``reference``'s under
    ``load`` competitors, and its 95 % t interval.

    Each repeat's two measurements ran back to back (the same placement of the process
    on the cores, mostly), so their ratio pairs out the scheduler's placement, which
    moves either one's slowdown by up to 2x. Slowdowns are over each variant's median with
    ``base`` competitors; that median's own error is not in the interval.
    """
    from scipy import stats

    base_variant, base_reference = (statistics.median(times[v][base]) for v in (variant, reference))
    logs = np.log(np.asarray(times[variant][load]) / base_variant) - np.log(
        np.asarray(times[reference][load]) / base_reference)
    if len(logs) < 2:
        return float(np.exp(logs.mean())), float("nan"), float("nan")
    half = stats.t.ppf(0.975, len(logs) - 1) * logs.std(ddof=1) / np.sqrt(len(logs))
    return tuple(float(np.exp(v)) for v in (logs.mean(), logs.mean() - half, logs.mean() + half))


def measure(args: argparse.Namespace, features: np.ndarray, labelled: np.ndarray) -> tuple[dict, dict, dict]:
    """{variant: {competitors: [seconds...]}}, the same of CPU seconds, and {variant: picks}
    (checked identical)."""
    budget = args.picks
    textbook_picks = min(args.textbook_picks or budget, budget)

    def runner(variant: str) -> Callable[[], tuple[np.ndarray, float | None]]:
        if variant == "textbook":
            def run():
                picks, initial, per_pick = textbook_kcenter(features, labelled, textbook_picks)
                # Extrapolated to the whole budget when fewer picks are timed.
                return picks, initial + per_pick * budget
            return run
        if variant.startswith("typiclust"):
            return lambda: (_run_typiclust(features, labelled, budget, variant), None)
        if variant.startswith("encoder"):
            return encoders[variant]
        return lambda: (_run_ours(features, labelled, budget, variant), None)

    encoders = {variant: encoder_runner(1 if variant == "encoder-1" else None, args.encoder_iterations)
                for variant in args.variants if variant.startswith("encoder")}
    times = {variant: {k: [] for k in args.loads} for variant in args.variants}
    cpu_times = {variant: {k: [] for k in args.loads} for variant in args.variants}
    picks_of: dict[str, np.ndarray] = {}
    _run_ours(features, labelled, min(budget, 10), "ours")  # warm-up: faiss import, allocator
    for k in args.loads:
        with competitors(k, args.load, args.settle):
            for repeat in range(args.repeats):
                # Rotate the order so that no variant always runs first after the competitors start.
                order = args.variants[repeat % len(args.variants):] + args.variants[:repeat % len(args.variants)]
                for variant in order:
                    picks, seconds, cpu_seconds = timed(runner(variant), args.window)
                    times[variant][k].append(seconds)
                    cpu_times[variant][k].append(cpu_seconds)
                    reference = picks_of.setdefault(variant, picks)
                    if not np.array_equal(picks, reference):
                        raise SystemExit(f"{variant}: picks under {k} competitor(s) differ from the first run's")
                    print(f"[{k} competitor(s), run {repeat + 1}/{args.repeats}] {variant}: {seconds:.3f} s "
                          f"(CPU {cpu_seconds:.3f} s)", flush=True)
    if {"typiclust", "typiclust-old"} <= set(picks_of) and not np.array_equal(
            picks_of["typiclust"], picks_of["typiclust-old"]):
        raise SystemExit("TypiClust picks differ between the two threadings")
    ours = [v for v in args.variants if v in _KCENTER]
    for variant in ours[1:]:
        if not np.array_equal(picks_of[variant], picks_of[ours[0]]):
            raise SystemExit(f"picks of {variant} differ from those of {ours[0]}")
    if "textbook" in picks_of and ours:
        head = picks_of[ours[0]][:textbook_picks]
        if not np.array_equal(head, picks_of["textbook"]):
            same = int(np.sum(head == picks_of["textbook"]))
            raise SystemExit(f"ours and the textbook agree on {same}/{textbook_picks} picks only")
    return times, cpu_times, picks_of


def markdown(args: argparse.Namespace, times: dict, cpu_times: dict, features: np.ndarray, command: str) -> str:
    from benchmarks.common import machine_summary

    med = {v: {k: statistics.median(s) for k, s in by_k.items()} for v, by_k in times.items()}
    best = {v: {k: min(s) for k, s in by_k.items()} for v, by_k in times.items()}
    cpu = {v: {k: statistics.median(s) for k, s in by_k.items()} for v, by_k in cpu_times.items()}
    base, top = args.loads[0], args.loads[-1]
    textbook_picks = min(args.textbook_picks or args.picks, args.picks)
    head = ["implementation"]
    for k in args.loads:
        head.append(f"{k} competitor{'s' if k != 1 else ''}: s (min)")
        if k != base:
            head.append(f"slowdown x{k}")
    head += [f"CPU s per run, {base} / {top} competitors", f"share of a core, {top} competitors"]
    lines = [
        "## Selection under CPU contention (issue 14)",
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine_summary()}; {len(os.sched_getaffinity(0))} CPUs usable by the process.",
        "",
        f"Embedding-like features {features.shape[0]:,} x {features.shape[1]}, {args.labelled:,} labelled, "
        f"{args.picks:,} picks; competitors: single-threaded `{args.load}` busy loops started by the script. "
        f"Median (min) of {args.repeats} measurements per cell, variants interleaved; a measurement of a "
        f"variant faster than {args.window:g} s is the mean of back-to-back runs filling {args.window:g} s "
        "(a shorter one would time the scheduler's placement of one second). Slowdown = median under k "
        f"competitors / median with {base}. CPU s: the process's CPU time per run (all its threads); share "
        "of a core = CPU time / wall time (1 alone on a core, 0.5 sharing one; above 1: several threads). "
        "All runs made the same picks"
        + (f" (the textbook's first {textbook_picks:,} timed, its time extrapolated to the budget)"
           if textbook_picks < args.picks and "textbook" in times else "")
        + "."
        + (f" Encoder rows: seconds per run of {args.encoder_iterations} training iterations (batch 9 slices, "
           "18 views, of 64 x 64; ResNet-18; NT-Xent + 0.1 patient + 0.35 volume; Adam)."
           if any(v.startswith("encoder") for v in args.variants) else ""),
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for variant in args.variants:
        cells = [VARIANTS[variant]]
        for k in args.loads:
            cells.append(f"{med[variant][k]:.3f} ({best[variant][k]:.3f})")
            if k != base:
                cells.append(f"{med[variant][k] / med[variant][base]:.2f}x")
        cells.append(f"{cpu[variant][base]:.3f} / {cpu[variant][top]:.3f}")
        cells.append(f"{cpu[variant][top] / med[variant][top]:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    for shipped in ("ours", "typiclust", "encoder", "encoder-1"):
        if shipped not in times or "textbook" not in times:
            continue
        verdicts = []
        for k in args.loads:
            if k == base:
                continue
            ours, textbook = med[shipped][k] / med[shipped][base], med["textbook"][k] / med["textbook"][base]
            ratio, low, high = paired_ratio(times, shipped, "textbook", base, k)
            verdict = "met" if ratio <= 1.0 else "**not met**"
            verdicts.append(f"{k} competitor(s): {ours:.2f}x against {textbook:.2f}x; paired over the "
                            f"{args.repeats} repeats, {ratio:.2f}x the textbook's slowdown [{low:.2f}, {high:.2f}] "
                            f"({verdict})")
        if verdicts:
            lines += ["", f"Target (issue 14): {VARIANTS[shipped]} slows no more than the textbook loop. "
                      + "; ".join(verdicts) + "."]
    if "ours" in times and "textbook" in times:
        speedup = med["textbook"][base] / med["ours"][base]
        lines += ["", f"With {base} competitors ours is {speedup:.0f}x faster than the textbook loop."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--labelled", type=int, default=1000)
    parser.add_argument("--picks", type=int, default=1000)
    parser.add_argument("--textbook-picks", type=int, default=300,
                        help="time the textbook for its first K picks only, extrapolating (0: all)")
    parser.add_argument("--loads", default="0,1,2", help="competitor counts, comma-separated, first = baseline")
    parser.add_argument("--load", choices=sorted(_SPIN), default="python", help="what each competitor runs")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--encoder-iterations", type=int, default=8, help="encoder training iterations per run")
    parser.add_argument("--window", type=float, default=10.0,
                        help="time short variants as the mean of back-to-back runs filling this many seconds")
    parser.add_argument("--settle", type=float, default=1.0, help="seconds between starting competitors and timing")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the script, measures nothing")
    parser.add_argument("--out", default=None, help="also write the markdown table to this file")
    parser.add_argument("--write-docs", action="store_true", help="also write the 'contention' section of "
                        "docs/benchmarks.md")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.dim, args.labelled, args.picks = 1500, 64, 50, 60
        args.repeats, args.settle, args.window, args.encoder_iterations = 1, 0.2, 0.0, 1
    args.loads = [int(k) for k in args.loads.split(",")]
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = sorted(set(args.variants) - set(VARIANTS))
    if unknown or not args.variants:
        parser.error(f"--variants: unknown {unknown}; choose from {list(VARIANTS)}")
    if args.labelled < 1:
        parser.error("--labelled: at least 1 (the textbook loop starts from the labelled set)")
    cpus = len(os.sched_getaffinity(0))
    if cpus > 2 and max(args.loads) > 0:
        print(f"note: {cpus} CPUs usable; competitors contend only when they outnumber the free cores "
              "(run under `taskset -c 0,1` to measure as on the 2-core machine)", flush=True)
    print(f"torch threads {torch.get_num_threads()}, {cpus} CPUs usable, kcenter threads "
          f"{kcenter_module._THREADS} (per-pick loop {kcenter_module._PICK_THREADS})", flush=True)
    # SIGTERM (e.g. `timeout`) unwinds like Ctrl-C, so the competitors are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    features = embedding_like(args.n, args.dim)
    labelled = np.random.default_rng(1).choice(args.n, args.labelled, replace=False)
    times, cpu_times, _ = measure(args, features, labelled)
    argv_used = sys.argv[1:] if argv is None else argv
    command = "python -m benchmarks.bench_contention " + " ".join(shlex.quote(a) for a in argv_used)
    text = markdown(args, times, cpu_times, features, command.strip())
    print(text)
    if args.out:
        from pathlib import Path

        Path(args.out).write_text(text + "\n")
    if args.write_docs:
        from benchmarks.common import write_section

        write_section("contention", text)


if __name__ == "__main__":
    main()
