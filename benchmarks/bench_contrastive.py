"""Benchmark of group contrastive learning (issue 3, "Speed").

1. Training throughput (slices/s) of the group contrastive objective (NT-Xent + patient
   + volume losses, the paper's ACDC weights) against plain NT-Xent, with the same
   encoder, batch size, sampler and augmentation pipeline; the ratio should be >= 0.9.
   The two are timed in alternating blocks so drifts of a shared machine hit both.
2. Time to build one epoch of GroupBatchSampler batches for synthetic slice records
   (default 100,000 slices); the target is < 2 s.

Run: ``python benchmarks/bench_contrastive.py`` (about a minute on 2 CPU cores).
Figures are printed and written to the "contrastive" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_summary, write_section  # noqa: E402

from alseg_monai.contrastive import ContrastiveObjective, GroupBatchSampler, SimCLREncoder  # noqa: E402
from alseg_monai.contrastive.groups import batch_group_ids  # noqa: E402
from alseg_monai.contrastive.handlers import SetEpochHandler  # noqa: E402
from alseg_monai.contrastive.trainer import build_contrastive_loader, create_contrastive_trainer  # noqa: E402


def synthetic_records(num_slices: int, volumes_per_patient: int, slices_per_volume: int) -> list[dict]:
    """Slice records of whole patients, ``num_slices`` in all (the last patient may be partial)."""
    records = []
    per_patient = volumes_per_patient * slices_per_volume
    for i in range(num_slices):
        p, rest = divmod(i, per_patient)
        v, z = divmod(rest, slices_per_volume)
        volume = f"patient{p:05d}_frame{v:02d}"
        records.append({"id": f"{volume}_slice_{z}", "patient": f"patient{p:05d}", "volume": volume, "slice": z})
    return records


class SyntheticSlices(torch.utils.data.Dataset):
    """In-memory (1, S, S) images in [0, 1] for the records (smooth random blobs)."""

    def __init__(self, records: list[dict], size: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        low = rng.random((len(records), 1, 8, 8)).astype(np.float32)
        self.images = torch.nn.functional.interpolate(torch.from_numpy(low), size=(size, size), mode="bilinear")
        self.records = records

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        return {"image": self.images[index], **self.records[index]}


def time_sampler(num_slices: int, groupings: tuple[str, ...], batch_size: int, epochs: int = 3) -> dict:
    records = synthetic_records(num_slices, volumes_per_patient=2, slices_per_volume=10)
    start = time.perf_counter()
    sampler = GroupBatchSampler(records, batch_size, groupings=groupings, seed=0)
    build = time.perf_counter() - start
    times = []
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        start = time.perf_counter()
        batches = list(sampler)
        times.append(time.perf_counter() - start)
    return {"groupings": groupings, "batch_size": batch_size, "construct_s": build, "epoch_s": max(times), "batches": len(batches)}


def time_loss(objective: ContrastiveObjective, batch_size: int, repeats: int = 200) -> float:
    """Seconds per forward + backward of the objective alone on (B, 64) projections."""
    records = synthetic_records(batch_size, volumes_per_patient=2, slices_per_volume=1)
    ids = batch_group_ids([r["patient"] for r in records], [r["volume"] for r in records], ("anchor", "volume", "patient"))
    z = torch.randn(2 * batch_size, 64, requires_grad=True)
    start = time.perf_counter()
    for _ in range(repeats):
        out = objective(z[:batch_size], z[batch_size:], **ids)
        out["loss"].backward()
    return (time.perf_counter() - start) / repeats


def encoder_trainer(records: list[dict], dataset: torch.utils.data.Dataset, objective: ContrastiveObjective,
                    batch_size: int, groupings: tuple[str, ...] = ("patient", "volume"), device: str = "cpu",
                    num_workers: int = 0):
    """``(engine, loader)``: a fresh ResNet-18 SimCLR encoder (seed 0, Adam lr 3e-4, weight decay
    1e-6) trained by the project's ignite engine on GroupBatchSampler batches of ``dataset``;
    ``engine.run(loader, max_epochs=1, epoch_length=k)`` runs k iterations (again when finished)."""
    sampler = GroupBatchSampler(records, batch_size, groupings=groupings, seed=0)
    loader = build_contrastive_loader(dataset, sampler, num_workers=num_workers, seed=0)
    torch.manual_seed(0)
    encoder = SimCLREncoder()
    optimizer = torch.optim.Adam(encoder.parameters(), lr=3e-4, weight_decay=1e-6)
    engine = create_contrastive_trainer(encoder, objective, optimizer, sampler.roles, device=device)
    SetEpochHandler(sampler).attach(engine)
    return engine, loader


def time_training(args: argparse.Namespace) -> dict:
    groupings = ("patient", "volume")
    records = synthetic_records(args.train_slices, volumes_per_patient=2, slices_per_volume=10)
    dataset = SyntheticSlices(records, args.image_size)
    objectives = {
        "nt-xent": ContrastiveObjective(ntxent_weight=1.0, patient_weight=0.0, volume_weight=0.0, slice_weight=0.0),
        "gcl": ContrastiveObjective(),  # NT-Xent + 0.10 patient + 0.35 volume
    }
    runs = {name: encoder_trainer(records, dataset, objective, args.batch_size, groupings, args.device,
                                  args.num_workers) for name, objective in objectives.items()}
    # Warm-up (allocator, thread pools) outside the timings.
    for engine, loader in runs.values():
        engine.run(loader, max_epochs=1, epoch_length=2)
    elapsed = {name: 0.0 for name in runs}
    for _ in range(args.repeats):
        for name, (engine, loader) in runs.items():
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            start = time.perf_counter()
            # A finished engine starts a fresh run of exactly `iterations` batches.
            engine.run(loader, max_epochs=1, epoch_length=args.iterations)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            elapsed[name] += time.perf_counter() - start
    iterations = args.repeats * args.iterations
    throughput = {name: iterations * args.batch_size / elapsed[name] for name in runs}
    return {
        "throughput": throughput,
        "ratio": throughput["gcl"] / throughput["nt-xent"],
        "iteration_s": {name: elapsed[name] / iterations for name in runs},
        "loss_s": {name: time_loss(obj, args.batch_size) for name, obj in objectives.items()},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image-size", type=int, default=64, help="training image side (paper: 256)")
    parser.add_argument("--batch-size", type=int, default=9, help="slices per batch (paper: 9 for two groupings)")
    parser.add_argument("--iterations", type=int, default=12, help="iterations per timed block and objective")
    parser.add_argument("--repeats", type=int, default=5, help="alternating timed blocks per objective")
    parser.add_argument("--train-slices", type=int, default=400, help="slices in the training data set")
    parser.add_argument("--sampler-slices", type=int, default=100_000, help="slices for the sampler timing")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--no-write", action="store_true", help="print only, do not update docs/benchmarks.md")
    args = parser.parse_args(argv)

    sampler_rows = [
        time_sampler(args.sampler_slices, ("patient", "volume"), 9),
        time_sampler(args.sampler_slices, ("slice", "volume", "patient"), 8),
    ]
    training = time_training(args)

    command = "python benchmarks/bench_contrastive.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    lines = [
        "## Group contrastive learning (issue 3)",
        "",
        f"Command: `{command.strip()}`  ",
        f"Machine: {machine_summary()}",
        "",
        f"Training throughput, ResNet-18 SimCLR encoder (512-d), batch {args.batch_size} slices "
        f"(2 x {args.batch_size} views), {args.image_size}x{args.image_size} images, paper augmentations, "
        f"GroupBatchSampler (patient, volume), device {args.device}, {args.repeats} alternating blocks of "
        f"{args.iterations} iterations per objective:",
        "",
        "| objective | slices/s | s / iteration | loss fwd+bwd alone (ms) |",
        "|---|---|---|---|",
    ]
    for name, label in (("nt-xent", "NT-Xent only"), ("gcl", "NT-Xent + 0.10 patient + 0.35 volume (GCL)")):
        lines.append(
            f"| {label} | {training['throughput'][name]:.1f} | {training['iteration_s'][name]:.3f} | {1000 * training['loss_s'][name]:.2f} |"
        )
    lines += [
        "",
        f"**Throughput ratio GCL / NT-Xent: {training['ratio']:.3f}** (target >= 0.9).",
        "",
        "The extra group losses cost "
        f"{1000 * (training['loss_s']['gcl'] - training['loss_s']['nt-xent']):.2f} ms per iteration "
        f"({100 * (training['loss_s']['gcl'] - training['loss_s']['nt-xent']) / training['iteration_s']['nt-xent']:.2f} % "
        "of an NT-Xent iteration); differences in the ratio beyond that are timing noise of the machine.",
        "",
        f"Sampler: one epoch of batches for {args.sampler_slices:,} synthetic slice records "
        "(2 volumes x 10 slices per patient), slowest of 3 epochs:",
        "",
        "| groupings | batch size | batches / epoch | build sampler (s) | one epoch (s) |",
        "|---|---|---|---|---|",
    ]
    for row in sampler_rows:
        lines.append(
            f"| {', '.join(row['groupings'])} | {row['batch_size']} | {row['batches']:,} | {row['construct_s']:.3f} | {row['epoch_s']:.3f} |"
        )
    lines += ["", "Target: one epoch < 2 s."]
    markdown = "\n".join(lines)
    print(markdown)
    if not args.no_write:
        write_section("contrastive", markdown)


if __name__ == "__main__":
    main()
