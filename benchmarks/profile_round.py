"""Profile of one active-learning round (issue 14: "a round's time accounted for").

Builds the bundle's experiment through the real code (:func:`alseg_monai.loop.load_experiment`
on the bundle's JSON configs), runs one (strategy, repeat) chain up to the profiled round
and splits that round's wall time into exclusive phases: selection, annotation, pick
diagnostics, training data (loading, augmentation, batching), forward and backward (the
ignite process function: forward, loss, backward, optimiser step), validation (the
validator's runs), the rest of training (set-up, LR schedule, logging), inference and
Dice on the test volumes, I/O (checkpoints, the kept model, the round's JSON and CSV
files) and the loop's own bookkeeping. The work done once per run (building the
experiment with its phantom data, reading and caching the slices, training the encoder,
the report) is timed apart.

Nothing in the library is changed: the script wraps the loop's parts (the loop object's
``select``, ``oracle.annotate``, ``describe``, ``trainer``, ``evaluator``), hooks the
round trainer's ignite engines through an extra entry of the trainer's
``train_handlers`` (``GET_BATCH_STARTED`` / ``GET_BATCH_COMPLETED`` for data, the
engine's process function, the validator's ``run``), and patches the writers (ignite
``DiskSaver``, the loop's JSON writes) while it runs. Each phase's time excludes the
phases nested in it, so the round's phases add up to its wall time.

``--config demo`` is ``data/phantom.json + cpu.json + demo.json`` (``make demo``),
``--config study`` ``data/phantom.json + cpu.json + study.json`` (``make study``). The
run is in-process (``workers`` 1); the round gets the torch threads one of the config's
parallel workers would have (``torch.get_num_threads() // workers``), the once-per-run
work all of them, as in ``make demo``.

Run from the repository root, on a quiet machine::

    python -m benchmarks.profile_round --config demo --out demo_round.md   # a few minutes
    python -m benchmarks.profile_round --config study --write-docs         # into docs/benchmarks.md
    python -m benchmarks.profile_round --quick                             # tiny sizes (smoke.json), checks the script
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import shlex
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import torch
from ignite.engine import Events

CONFIGS = {
    "demo": ["data/phantom.json", "cpu.json", "demo.json"],
    "study": ["data/phantom.json", "cpu.json", "study.json"],
}

# Phases of the round, in table order (exclusive times).
ROUND = "loop bookkeeping (the rest of the round)"
SELECTION = "selection (the strategy's picks)"
ANNOTATION = "annotation (simulated oracle)"
DIAGNOSTICS = "pick diagnostics"
DATA = "training: data (loading, augmentation, batching)"
FORWARD = "training: forward and backward (incl. optimiser step)"
VALIDATION = "training: validation on the validation volumes"
TRAINING = "training: the rest (networks, loaders, LR schedule, logging)"
TEST = "inference and Dice on the test volumes"
IO = "I/O (checkpoints, kept model, round JSON / CSV files)"
ROUND_PHASES = (SELECTION, ANNOTATION, DIAGNOSTICS, DATA, FORWARD, VALIDATION, TRAINING, TEST, IO, ROUND)

# Once per run.
BUILD = "build the experiment (config, phantom data)"
PREPARE = "prepare (read, split, slice cache)"
ENCODER = "encoder training and embeddings"
EARLIER = "earlier rounds of the chain"
REPORT = "report (tables, plots)"
RUN_PHASES = (BUILD, PREPARE, ENCODER, EARLIER, REPORT)


class PhaseClock:
    """Wall time per phase, exclusive: a phase's time leaves out the phases started inside it.

    ``sync`` (e.g. ``torch.cuda.synchronize``) runs at every phase boundary, so that
    asynchronous GPU work is counted in the phase that queued it.
    """

    def __init__(self, sync: Callable[[], None] | None = None) -> None:
        self.exclusive: dict[str, float] = defaultdict(float)
        self.calls: Counter = Counter()
        self.sync = sync
        self._stack: list[list[Any]] = []  # [name, start, seconds of nested phases]

    def start(self, name: str) -> None:
        if self.sync is not None:
            self.sync()
        self._stack.append([name, time.perf_counter(), 0.0])

    def stop(self, name: str) -> float:
        if self.sync is not None:
            self.sync()
        names = [entry[0] for entry in self._stack]
        if name not in names:
            raise RuntimeError(f"phase {name!r} stopped but not running (running: {names})")
        while self._stack[-1][0] != name:  # an error left inner phases open: they end here, uncounted
            self._stack.pop()
        _, start, nested = self._stack.pop()
        elapsed = time.perf_counter() - start
        self.exclusive[name] += elapsed - nested
        self.calls[name] += 1
        if self._stack:
            self._stack[-1][2] += elapsed
        return elapsed

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        self.start(name)
        try:
            yield
        finally:
            self.stop(name)

    def wrap(self, function: Callable, name: str) -> Callable:
        @functools.wraps(function)
        def timed(*args, **kwargs):
            with self.phase(name):
                return function(*args, **kwargs)

        return timed


class EngineTimer:
    """An entry of a round trainer's ``train_handlers`` (built with the round's ``trainer``
    and ``validator``) that times the trainer's data and process function and the
    validator's runs."""

    def __init__(self, clock: PhaseClock, validator: Any) -> None:
        self.clock, self.validator = clock, validator

    def attach(self, engine: Any) -> None:
        engine.add_event_handler(Events.GET_BATCH_STARTED, lambda _: self.clock.start(DATA))
        engine.add_event_handler(Events.GET_BATCH_COMPLETED, lambda _: self.clock.stop(DATA))
        # ignite calls engine._process_function(engine, batch) once per iteration.
        engine._process_function = self.clock.wrap(engine._process_function, FORWARD)
        self.validator.run = self.clock.wrap(self.validator.run, VALIDATION)


@contextlib.contextmanager
def io_patches(clock: PhaseClock) -> Iterator[list[str]]:
    """Count the writers and readers of a round as I/O while the block runs; yields what
    could not be patched (a renamed function), to be reported."""
    import ignite.handlers

    from alseg_monai.segmentation import handlers as seg_handlers
    from alseg_monai.segmentation import trainer as seg_trainer

    targets = [
        (ignite.handlers.DiskSaver, "__call__"),  # the best-on-validation checkpoints
        (seg_handlers.RestoreBestHandler, "__call__"),  # loads the best checkpoint back
        (seg_trainer, "_write_round"),  # best_model.pt and round_summary.json
    ]
    for module_name, attribute in (
        ("alseg_monai.loop.loop", "_write"),  # selection.json, metrics.json
        ("alseg_monai.loop.experiment", "atomic_write_json"),  # training.json
        ("alseg_monai.evaluation.volumes", "write_dice_csv"),  # the test Dice CSV
    ):
        targets.append((sys.modules.get(module_name) or __import__(module_name, fromlist=["_"]), attribute))
    missing = []
    with contextlib.ExitStack() as stack:
        for owner, attribute in targets:
            original = getattr(owner, attribute, None)
            if original is None:
                missing.append(f"{getattr(owner, '__name__', owner)}.{attribute}")
                continue
            stack.enter_context(mock.patch.object(owner, attribute, clock.wrap(original, IO)))
        yield missing


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def profile(args: argparse.Namespace) -> dict:
    from alseg_monai.loop.config import load_config, load_experiment
    from alseg_monai.loop.parallel import threads_per_worker
    from alseg_monai.loop.report import write_run_report

    configs = CONFIGS[args.config] + (["smoke.json"] if args.quick else [])
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="profile_round_"))
    overrides = {
        "output_dir": str(workdir / f"run_{args.config}"),
        "phantom#root": str(workdir / "phantom"),
        "progress": False,
        "workers": 1,
    }
    if args.device:
        overrides["device"] = args.device
    config_workers = load_config(configs)["workers"]
    config_workers = config_workers if isinstance(config_workers, int) and config_workers > 0 else 1
    round_threads = args.threads or threads_per_worker(config_workers)
    cuda = args.device is not None and args.device.startswith("cuda")
    once = PhaseClock(torch.cuda.synchronize if cuda else None)
    clock = PhaseClock(torch.cuda.synchronize if cuda else None)
    try:
        with once.phase(BUILD):
            experiment = load_experiment(configs, overrides)
        with once.phase(PREPARE):
            experiment.prepare()
        names = [spec.name for spec in experiment.specs]
        if args.strategy not in names:
            raise SystemExit(f"--strategy {args.strategy!r}: not one of the config's strategies {names}")
        index = names.index(args.strategy)
        spec = experiment.specs[index]
        if not 0 <= args.round < len(experiment.budgets):
            raise SystemExit(f"--round {args.round}: the config has rounds 0..{len(experiment.budgets) - 1}")
        strategy = experiment.strategy(spec)
        # The encoder whose embeddings the strategy asks for (None: none; a strategy of one's
        # own without the attribute would train it inside its selection, as in the real run).
        encoder = getattr(strategy, "encoder", None) if spec.unit == "slice" else None
        with once.phase(ENCODER):
            if encoder is not None:  # trained once per run and shared; the real run does it before the chains
                experiment.embeddings(encoder, getattr(strategy, "embedding", "backbone"))
        loop = experiment.loop(spec, args.repeat)
        labelled: list[str] = []
        with torch_threads(round_threads):
            if args.round:
                with once.phase(EARLIER):
                    for earlier in range(args.round):
                        _, labelled = loop.run_round(earlier, labelled)
            round_trainer = experiment.trainer(spec)
            loop.select = clock.wrap(loop.select, SELECTION)
            loop.oracle.annotate = clock.wrap(loop.oracle.annotate, ANNOTATION)
            loop.describe = clock.wrap(loop.describe, DIAGNOSTICS)
            loop.trainer = clock.wrap(loop.trainer, TRAINING)
            loop.evaluator = clock.wrap(loop.evaluator, TEST)
            round_trainer.train_handlers.append(lambda validator: EngineTimer(clock, validator))
            try:
                with io_patches(clock) as unpatched:
                    with clock.phase(ROUND):
                        row, _ = loop.run_round(args.round, labelled)
            finally:
                round_trainer.train_handlers.pop()
        with once.phase(REPORT):
            write_run_report(experiment, experiment.collect_rows())
        return {
            "configs": configs, "round_threads": round_threads, "config_workers": config_workers, "row": row,
            "spec": spec, "trainer": round_trainer, "round": clock, "once": once, "unpatched": unpatched,
            "image_size": experiment.settings["image_size"], "pool": len(experiment.pool),
            "device": str(experiment.device), "workdir": workdir,
        }
    finally:
        if not args.workdir and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


def markdown(args: argparse.Namespace, result: dict, command: str) -> str:
    from benchmarks.common import machine_summary

    clock, once, row, trainer = result["round"], result["once"], result["row"], result["trainer"]
    total = sum(clock.exclusive[name] for name in ROUND_PHASES)
    iterations = clock.calls[FORWARD]
    lines = [
        f"## One active-learning round, profiled ({args.config}{', quick' if args.quick else ''})",
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine_summary()}",
        "",
        f"Configs {' + '.join(result['configs'])}, in one process (`workers` 1); the round ran with "
        f"{result['round_threads']} torch thread(s), as one of the config's {result['config_workers']} parallel "
        f"workers does, on {result['device']}. Profiled: strategy `{result['spec'].name}`, repeat {args.repeat}, "
        f"round {args.round} (budget {100 * row['budget']:g} % of {result['pool']:,} pool slices: "
        f"{row['labelled']:,} labelled, {row['added']:,} added), {trainer.models_per_round} model(s) x "
        f"{row['iterations']:,} iterations of batch {trainer.batch_size} at {result['image_size']}x"
        f"{result['image_size']}, validated {clock.calls[VALIDATION]} time(s); test Dice {row['dice']:.3f}.",
        "",
        "| phase | seconds | share of the round |",
        "|---|---|---|",
    ]
    for name in ROUND_PHASES:
        seconds = clock.exclusive[name]
        lines.append(f"| {name} | {seconds:.2f} | {100 * seconds / total:.1f} % |")
    lines.append(f"| **the round** | **{total:.2f}** | 100 % |")
    if iterations:
        slices = iterations * trainer.batch_size
        train_time = clock.exclusive[DATA] + clock.exclusive[FORWARD]
        lines += [
            "",
            f"Per training iteration: data {1000 * clock.exclusive[DATA] / iterations:.1f} ms, forward and "
            f"backward {1000 * clock.exclusive[FORWARD] / iterations:.1f} ms ({slices / train_time:.1f} slices/s "
            f"over both); validation {clock.exclusive[VALIDATION] / max(1, clock.calls[VALIDATION]):.2f} s per pass.",
        ]
    lines += [
        "",
        "Once per run (shared by every round and strategy; the encoder and the report with all the process's "
        "threads):",
        "",
        "| phase | seconds | in rounds like this one |",
        "|---|---|---|",
    ]
    for name in RUN_PHASES:
        if name == EARLIER and not args.round:
            continue
        seconds = once.exclusive[name]
        lines.append(f"| {name} | {seconds:.2f} | {seconds / total:.2f} |")
    if result["unpatched"]:
        lines += ["", f"Not timed as I/O (not found; counted in their callers): {', '.join(result['unpatched'])}."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", choices=sorted(CONFIGS), default="demo")
    parser.add_argument("--strategy", default="gcl_coreset", help="the strategy whose round is profiled")
    parser.add_argument("--round", type=int, default=0, help="the round profiled (earlier ones run first, untimed)")
    parser.add_argument("--repeat", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads of the round (default: those of one of the config's parallel workers)")
    parser.add_argument("--device", default=None, help="override the config's device (e.g. cuda)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (adds smoke.json): checks the script")
    parser.add_argument("--workdir", default=None, help="phantom data and run directory (default: a temp dir, "
                        "removed afterwards)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    parser.add_argument("--out", default=None, help="also write the markdown to this file")
    parser.add_argument("--write-docs", action="store_true",
                        help="also write the 'round-<config>' section of docs/benchmarks.md")
    parser.add_argument("--verbose", action="store_true", help="the library's INFO logs")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    result = profile(args)
    argv_used = sys.argv[1:] if argv is None else argv
    command = "python -m benchmarks.profile_round " + " ".join(shlex.quote(a) for a in argv_used)
    text = markdown(args, result, command.strip())
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    if args.write_docs:
        from benchmarks.common import write_section

        write_section(f"round-{args.config}", text)


if __name__ == "__main__":
    main()
