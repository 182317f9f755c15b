"""Benchmark of per-round segmentation (issue 5, "Quality and speed").

1. Quality: on the synthetic phantom at 128x128, train on 40 % of the training slices
   (a seeded random subset) with full masks (UNet, 0.5 CE + 0.5 Dice) and with
   scribbles (DMPLS), and score the test volumes by 3D Dice (paper convention). The
   targets are >= 0.85 (full) and >= 0.75 (scribbles) at CPU-friendly iterations.
2. Throughput: UNet training speed through the real pipeline (SliceCache ->
   SliceDataset -> seeded augmentation -> MONAI DataLoader -> SupervisedTrainer with
   its poly-LR handler) against the bare network's forward/backward/SGD step on an
   in-memory batch of the same size, in slices/s; the ratio should be >= 0.9. The two are timed
   in alternating blocks so drifts of a shared machine hit both.

Run: ``python benchmarks/bench_segmentation.py`` (quality runs take tens of minutes
on 2 CPU cores; ``--part throughput`` takes about two). Figures are printed and
written to the "segmentation" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import functools
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from ignite.engine import Events
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_summary, write_section  # noqa: E402

from alseg_monai.data import (  # noqa: E402
    SliceCache,
    SliceDataset,
    VolumeDataset,
    make_phantom,
    read_dataset,
    split_dataset,
)
from alseg_monai.evaluation import evaluate_volumes, predict  # noqa: E402
from alseg_monai.segmentation import SupervisedSegLoss, UNet2D, train_augmentation, train_round  # noqa: E402
from alseg_monai.segmentation.engines import create_trainer  # noqa: E402
from alseg_monai.segmentation.trainer import create_train_loader  # noqa: E402
from alseg_monai.utils import derive_seed  # noqa: E402


def phantom_split(root: Path, patients: int, image_size: int, fraction: float, seed: int) -> dict:
    """Phantom patients split by patient (all but two for training, one validation, one
    test, unless more are given), and a seeded ``fraction`` of the training slices."""
    make_phantom(root, patients, image_size=image_size, seed=seed, progress=False)
    index = read_dataset("acdc", root)
    test_patients = max(1, patients // 5)
    fractions = ((patients - 1 - test_patients) / patients, 1 / patients, test_patients / patients)
    parts = split_dataset(index, fractions=fractions, seed=seed)
    cache = SliceCache(index.volumes, image_size, index.num_classes, index.ignore_index, progress=False)
    pool = parts["train"].slices
    rng = np.random.default_rng(derive_seed(seed, "labelled"))
    labelled = [pool[i] for i in sorted(rng.choice(len(pool), int(round(fraction * len(pool))), replace=False))]
    return {
        "cache": cache, "labelled": labelled, "pool": len(pool), "num_classes": index.num_classes,
        "ignore_index": index.ignore_index,
        "val": VolumeDataset(parts["val"].volumes, cache), "test": VolumeDataset(parts["test"].volumes, cache),
        "patients": {k: len({s["patient"] for s in v.slices}) for k, v in parts.items()},
    }


FAR_PIXELS = 10


def far_false_positives(model, volumes) -> float:
    """Share of false-positive foreground voxels farther than FAR_PIXELS from any true
    foreground pixel of their slice: errors far from the heart, not at its borders."""
    far = total = 0
    for index in range(len(volumes)):
        item = volumes[index]
        pred = predict(model, item["image"], item["spatial_shape"])
        label = np.asarray(item["label_original"])
        for z in range(label.shape[-1]):
            false_positive = (pred[..., z] > 0) & (label[..., z] == 0)
            total += int(false_positive.sum())
            if not label[..., z].any():  # no heart in this slice: every false positive is far from it
                far += int(false_positive.sum())
                continue
            distance = ndimage.distance_transform_edt(label[..., z] == 0)
            far += int((false_positive & (distance > FAR_PIXELS)).sum())
    return far / total if total else 0.0


def run_quality(data: dict, label_kind: str, iterations: int, batch_size: int, num_models: int, seed: int,
                out: Path) -> dict:
    key = "label" if label_kind == "full" else "scribble"
    train = SliceDataset(data["labelled"], data["cache"], keys=("image", key))
    result = train_round(
        train, data["val"], out / label_kind, data["num_classes"], label_kind=label_kind, iterations=iterations,
        batch_size=batch_size, num_models=num_models, val_interval=max(1, iterations // 10), seed=seed,
        ignore_index=data["ignore_index"],
    )
    evaluation = evaluate_volumes(result.model, data["test"], data["num_classes"])
    far = far_false_positives(result.model, data["test"])
    row = {"label_kind": label_kind, "iterations": iterations, "batch_size": batch_size,
           "num_models": num_models, "val_dice": result.best_val_dice, "test_dice": evaluation.mean_dice,
           "per_class": evaluation.per_class.tolist(), "seconds": result.seconds, "far_fp": far}
    print(f"[quality] {label_kind}: test 3D Dice {row['test_dice']:.3f} (per class "
          f"{', '.join(f'{d:.3f}' for d in row['per_class'])}), validation {row['val_dice']:.3f}, "
          f"{iterations} iterations x batch {batch_size}, {num_models} model(s), {row['seconds']:.0f} s; "
          f"{far:.0%} of false-positive foreground voxels lie > {FAR_PIXELS} px from the heart", flush=True)
    return row


def run_throughput(data: dict, batch_size: int, iterations: int, blocks: int, seed: int) -> dict:
    """Median slices/s of the pipeline and of the bare loop, timed in alternating blocks.

    Slices, not iterations, are counted: the pipeline's epoch ends with a partial batch.
    The bare loop trains on one in-memory batch of real (unaugmented) slices.
    """
    train = SliceDataset(data["labelled"], data["cache"], keys=("image", "label"))
    num_classes = data["num_classes"]
    torch.manual_seed(seed)
    network = UNet2D(in_channels=1, num_classes=num_classes)
    loader = create_train_loader(train, train_augmentation("label", seed=seed), batch_size, seed=seed)
    # The bundle's optimizer and lr_scheduler components (factories), as the bare loop's SGD.
    sgd = functools.partial(torch.optim.SGD, lr=0.01, momentum=0.9, weight_decay=1e-4)
    poly = functools.partial(torch.optim.lr_scheduler.PolynomialLR, power=0.9)

    def pipeline_block(n):
        trainer = create_trainer(network, loader, SupervisedSegLoss(), n, optimizer=sgd, lr_scheduler=poly)
        seen = []
        trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: seen.append(e.state.output["image"].shape[0]))
        start = time.perf_counter()
        trainer.run()
        return sum(seen) / (time.perf_counter() - start)

    items = [train[i] for i in range(batch_size)]
    images = torch.stack([item["image"] for item in items])
    labels = torch.stack([item["label"] for item in items])
    bare = UNet2D(in_channels=1, num_classes=num_classes)
    optimizer = sgd(bare.parameters())
    loss = SupervisedSegLoss()

    def bare_block(n):
        bare.train()
        start = time.perf_counter()
        for _ in range(n):
            optimizer.zero_grad(set_to_none=True)
            loss(bare(images), labels).backward()
            optimizer.step()
        return n * batch_size / (time.perf_counter() - start)

    pipeline_block(2)  # warm-up: allocator, first batches
    bare_block(2)
    pipe_rates, bare_rates = [], []
    for _ in range(blocks):
        bare_rates.append(bare_block(iterations))
        pipe_rates.append(pipeline_block(iterations))
    row = {"batch_size": batch_size, "pipeline": float(np.median(pipe_rates)), "bare": float(np.median(bare_rates)),
           "blocks": blocks, "iterations": iterations, "image_size": int(images.shape[-1])}
    row["ratio"] = row["pipeline"] / row["bare"]
    print(f"[throughput] batch {batch_size} at {row['image_size']}x{row['image_size']}: pipeline "
          f"{row['pipeline']:.2f} slices/s, bare {row['bare']:.2f} slices/s, ratio {row['ratio']:.3f} "
          f"(median of {blocks} alternating blocks of {iterations} iterations)", flush=True)
    return row


def report(args: argparse.Namespace, data: dict, quality: list[dict], throughput: dict | None) -> str:
    command = "python benchmarks/bench_segmentation.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    lines = [
        "## Per-round segmentation (issue 5)", "",
        f"Command: `OMP_NUM_THREADS={torch.get_num_threads()} {command.strip()}`  ",
        f"Machine: {machine_summary()}", "",
    ]
    if quality:
        lines += [
            f"Quality: phantom at {args.image_size}x{args.image_size}, {args.patients} patients "
            f"(train / val / test patients {data['patients']['train']} / {data['patients']['val']} / "
            f"{data['patients']['test']}), {len(data['labelled'])} of {data['pool']} training slices labelled "
            f"({args.fraction:.0%}, seeded random), test 3D Dice (paper convention, mean over classes then "
            "volumes), paper optimiser (SGD 0.01, momentum 0.9, poly 0.9) and augmentation.", "",
            "| labels | network | iterations x batch | models | val Dice | test Dice | per class (RV, Myo, LV) "
            f"| target | false positives > {FAR_PIXELS} px from the heart | train time |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for row in quality:
            target = 0.85 if row["label_kind"] == "full" else 0.75
            verdict = "met" if row["test_dice"] >= target else "**not met**"
            network = "UNet (CE + Dice)" if row["label_kind"] == "full" else "DMPLS (scribbles)"
            lines.append(
                f"| {row['label_kind']} | {network} | {row['iterations']} x {row['batch_size']} | "
                f"{row['num_models']} | {row['val_dice']:.3f} | **{row['test_dice']:.3f}** | "
                f"{' / '.join(f'{d:.3f}' for d in row['per_class'])} | >= {target} ({verdict}) | "
                f"{row['far_fp']:.0%} | {row['seconds'] / 60:.1f} min |")
        lines.append("")
    if throughput:
        lines += [
            f"Throughput: UNet (16-256) training at batch {throughput['batch_size']}, "
            f"{throughput['image_size']}x{throughput['image_size']}, data loading in the main process; "
            f"median of {throughput['blocks']} alternating blocks of {throughput['iterations']} iterations.", "",
            "| pipeline (SliceDataset + augmentation + DataLoader + SupervisedTrainer) | bare forward/backward "
            "on in-memory batches | ratio | target |",
            "|---|---|---|---|",
            f"| {throughput['pipeline']:.2f} slices/s | {throughput['bare']:.2f} slices/s | "
            f"**{throughput['ratio']:.3f}** | >= 0.9 ({'met' if throughput['ratio'] >= 0.9 else '**not met**'}) |",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("all", "quality", "throughput"), default="all")
    parser.add_argument("--patients", type=int, default=10)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--fraction", type=float, default=0.4)
    parser.add_argument("--iterations-full", type=int, default=1200)
    parser.add_argument("--iterations-scribble", type=int, default=1500)
    parser.add_argument("--batch-full", type=int, default=12)
    parser.add_argument("--batch-scribble", type=int, default=6)
    parser.add_argument("--labels", choices=("both", "full", "scribble"), default="both",
                        help="which quality rows to run (scribbles first: the slower and riskier one)")
    parser.add_argument("--num-models", type=int, default=1)
    parser.add_argument("--throughput-batch", type=int, default=12)
    parser.add_argument("--throughput-iterations", type=int, default=5)
    parser.add_argument("--throughput-blocks", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=None, help="phantom and checkpoints (default: a temp dir)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_segmentation_"))
    data = phantom_split(workdir / f"phantom_{args.patients}_{args.image_size}", args.patients, args.image_size,
                         args.fraction, args.seed)
    print(f"phantom: {args.patients} patients {data['patients']}, {len(data['labelled'])} of {data['pool']} "
          "training slices labelled", flush=True)
    quality, throughput = [], None
    if args.part in ("all", "throughput"):
        throughput = run_throughput(data, args.throughput_batch, args.throughput_iterations,
                                    args.throughput_blocks, args.seed)
    if args.part in ("all", "quality"):
        if args.labels in ("both", "scribble"):
            quality.append(run_quality(data, "scribble", args.iterations_scribble, args.batch_scribble,
                                       args.num_models, args.seed, workdir))
        if args.labels in ("both", "full"):
            quality.append(run_quality(data, "full", args.iterations_full, args.batch_full, args.num_models,
                                       args.seed, workdir))
    markdown = report(args, data, quality, throughput)
    print(markdown)
    if not args.no_write:
        write_section("segmentation", markdown)


if __name__ == "__main__":
    main()
