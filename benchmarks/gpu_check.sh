#!/usr/bin/env bash
# GPU check of issue 14 (must have 3): one script, at most 8 minutes on one GPU.
#
#   1. encoder (ResNet-18 SimCLR, group contrastive) training slices/s with AMP on CUDA
#      (benchmarks/bench_contrastive.py; the paper: about 40 slices/s on a V100, the goal 10x that);
#   2. K-Center Greedy on 1,000,000 x 512 embedding-like features: the GPU path against the
#      CPU path, identical picks (the CPU side makes fewer picks, compared with the GPU's first ones);
#   3. segmentation (UNet, 0.5 CE + 0.5 Dice, paper augmentation) training slices/s with AMP
#      through the real pipeline (SliceDataset -> augmentation -> DataLoader -> SupervisedTrainer);
#   4. the smoke experiment on CUDA, end to end (python -m monai.bundle run ... smoke.json --device cuda).
#
# Usage, from anywhere (the script moves to the repository root):
#
#   PYTHON=/path/to/cuda/env/bin/python bash benchmarks/gpu_check.sh [OUT_DIR]
#   bash benchmarks/gpu_check.sh --cpu-dry-run [OUT_DIR]     # every step on the CPU at tiny sizes
#
# OUT_DIR defaults to $OUT, else ./gpu_check_out. The figures go to OUT_DIR/gpu_check.md
# (each step's section and a status table), each step's full output to OUT_DIR/logs/.
# Every step runs under `timeout`, capped by what is left of the 8-minute budget
# (TOTAL_S, default 460 s, plus at most 10 s for a killed step to exit); a step that
# fails or times out is recorded and the next one runs.
# The exit status is 0 only when every step passed.

set -euo pipefail

DRY=0
if [[ "${1:-}" == "--cpu-dry-run" ]]; then
    DRY=1
    shift
fi
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
PY=${PYTHON:-python}
OUT_DIR=${1:-${OUT:-$ROOT/gpu_check_out}}
mkdir -p "$OUT_DIR/logs"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
SUMMARY=$OUT_DIR/gpu_check.md
# On the CPU (dry run) the steps take longer than on the GPU: scale their limits.
if (( DRY )); then LIMIT_SCALE=${LIMIT_SCALE:-6}; TOTAL_S=${TOTAL_S:-3000}; fi
LIMIT_SCALE=${LIMIT_SCALE:-1}
TOTAL_S=${TOTAL_S:-460}
START=$SECONDS
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1

if (( DRY )); then
    export DEVICE=cpu
    ENC_ARGS=(--image-size 32 --iterations 2 --repeats 1 --train-slices 90 --sampler-slices 900 --num-workers 0)
    ENC_BIG_ARGS=(--image-size 32 --batch-size 18 --iterations 2 --repeats 1 --train-slices 200 --sampler-slices 900 --num-workers 0)
    export KC_N=3000 KC_DIM=64 KC_LABELLED=20 KC_GPU_PICKS=30 KC_CPU_PICKS=10
    export SEG_PATIENTS=5 SEG_SIZE=32 SEG_BATCHES="4 8" SEG_WARMUP=1 SEG_ITERATIONS=3 SEG_WORKERS=0
else
    export DEVICE=cuda
    # Paper batch (9 slices, 18 views) at 256 x 256; then a GPU-sized batch. Loader workers
    # augment on the CPU; enough iterations per block that their start-up does not dominate.
    ENC_ARGS=(--image-size 256 --batch-size 9 --iterations 60 --repeats 2 --train-slices 1200 --sampler-slices 9000 --num-workers 8)
    ENC_BIG_ARGS=(--image-size 256 --batch-size 72 --iterations 12 --repeats 2 --train-slices 2400 --sampler-slices 9000 --num-workers 12)
    export KC_N=1000000 KC_DIM=512 KC_LABELLED=1000 KC_GPU_PICKS=1000 KC_CPU_PICKS=100
    export SEG_PATIENTS=8 SEG_SIZE=256 SEG_BATCHES="12 48" SEG_WARMUP=5 SEG_ITERATIONS=40 SEG_WORKERS=8
fi

STATUS=()
FAILED=0

{
    echo "# GPU check (issue 14)"
    echo
    echo "Command: \`bash benchmarks/gpu_check.sh$( ((DRY)) && echo ' --cpu-dry-run')\`, $(date -u '+%Y-%m-%d %H:%M UTC'), device $DEVICE, budget ${TOTAL_S} s"
    echo
} > "$SUMMARY"

# run_step NAME LIMIT_S COMMAND...: run under timeout (capped by the budget left), log, record.
run_step() {
    local name=$1 limit=$(( $2 * LIMIT_SCALE ))
    shift 2
    local left=$(( TOTAL_S - (SECONDS - START) ))
    local t=$(( limit < left ? limit : left ))
    if (( t < 10 )); then
        STATUS+=("| $name | skipped (budget spent) | 0 |")
        FAILED=1
        return 0
    fi
    local begin=$SECONDS rc=0
    echo "== $name (timeout ${t} s) ==" >&2
    timeout -k 10 "$t" "$@" > "$OUT_DIR/logs/$name.log" 2>&1 || rc=$?
    local took=$(( SECONDS - begin ))
    if (( rc == 0 )); then
        STATUS+=("| $name | ok | $took |")
    elif (( rc == 124 || rc == 137 )); then
        STATUS+=("| $name | **timed out** after ${t} s | $took |")
        FAILED=1
    else
        STATUS+=("| $name | **failed** (exit $rc, see logs/$name.log) | $took |")
        FAILED=1
    fi
    tail -n 5 "$OUT_DIR/logs/$name.log" >&2 || true
    return 0
}

# The markdown a step printed: from its first "## " heading to the end of its log.
section_of() {
    sed -n '/^## /,$p' "$OUT_DIR/logs/$1.log" >> "$SUMMARY" || true
    echo >> "$SUMMARY"
}

# 0. The environment.
run_step env 25 "$PY" - <<'PY'
import os, platform
import torch
device = os.environ["DEVICE"]
print("## Environment\n")
print(f"- python {platform.python_version()}, torch {torch.__version__}, CUDA build {torch.version.cuda}")
if device == "cuda":
    if not torch.cuda.is_available():
        raise SystemExit("torch sees no CUDA device: run with PYTHON pointing at a CUDA build of torch")
    props = torch.cuda.get_device_properties(0)
    print(f"- GPU {props.name}, {props.total_memory / 2**30:.0f} GiB, {torch.cuda.device_count()} visible")
try:
    import faiss
    gpus = faiss.get_num_gpus() if hasattr(faiss, "StandardGpuResources") else 0
    print(f"- faiss {faiss.__version__}, {gpus} GPU(s) for faiss (0: K-Center's initial search runs in torch)")
except ImportError as err:
    print(f"- faiss missing: {err}")
print(f"- {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}")
PY
section_of env
if (( FAILED )); then
    { echo "## Status"; echo; echo "| step | result | seconds |"; echo "|---|---|---|"; printf '%s\n' "${STATUS[@]}"; } >> "$SUMMARY"
    cat "$SUMMARY" "$OUT_DIR/logs/env.log"
    exit 1
fi

# 1. Encoder training throughput with AMP (bench_contrastive: AMP and channels-last by default on CUDA).
run_step encoder_batch9 90 "$PY" benchmarks/bench_contrastive.py --device "$DEVICE" --no-write "${ENC_ARGS[@]}"
section_of encoder_batch9
# The GCL row of the table: | NT-Xent + 0.10 patient + 0.35 volume (GCL) | slices/s | ...
encoder_goal() {
    local rate verdict
    rate=$(awk -F'|' '/\(GCL\)/ {gsub(/ /, "", $3); print $3; exit}' "$OUT_DIR/logs/$1.log" 2>/dev/null || true)
    [[ -n "$rate" ]] || return 0
    verdict=$(awk -v r="$rate" 'BEGIN {printf "%.1fx; goal 10x = 400 slices/s: %s", r / 40, (r >= 400 ? "met" : "not met")}')
    echo "Encoder (GCL), batch $2: **$rate slices/s**, against the paper's ~40 slices/s on a V100: $verdict." >> "$SUMMARY"
    echo >> "$SUMMARY"
}
encoder_goal encoder_batch9 9
run_step encoder_batch72 45 "$PY" benchmarks/bench_contrastive.py --device "$DEVICE" --no-write "${ENC_BIG_ARGS[@]}"
section_of encoder_batch72
encoder_goal encoder_batch72 72

# 2. K-Center Greedy: GPU path against CPU path on the same features, identical picks.
run_step kcenter 100 "$PY" - <<'PY'
import os, time
import numpy as np
import torch
from alseg_monai.selection import kcenter as kcenter_module
from alseg_monai.selection.kcenter import kcenter_greedy
from benchmarks.bench_kcenter import embedding_like

device = os.environ["DEVICE"]
n, dim, num_labelled = int(os.environ["KC_N"]), int(os.environ["KC_DIM"]), int(os.environ["KC_LABELLED"])
gpu_picks, cpu_picks = int(os.environ["KC_GPU_PICKS"]), int(os.environ["KC_CPU_PICKS"])

def sync():
    if device.startswith("cuda"):
        torch.cuda.synchronize()

def timed(run):
    sync()
    start = time.perf_counter()
    out = run()
    sync()
    return out, time.perf_counter() - start

features, generate_s = timed(lambda: embedding_like(n, dim, seed=3))
labelled = np.random.default_rng(1).choice(n, num_labelled, replace=False)
timed(lambda: kcenter_greedy(features[:5000], [0, 1], 5, device=device))  # warm-up: CUDA context, cuBLAS
on_device, copy_s = timed(lambda: torch.from_numpy(features).to(device))
gpu_short, gpu_short_s = timed(lambda: kcenter_greedy(on_device, labelled, cpu_picks, device=device))
gpu, gpu_s = timed(lambda: kcenter_greedy(on_device, labelled, gpu_picks, device=device))
gpu_host, gpu_host_s = timed(lambda: kcenter_greedy(features, labelled, gpu_picks, device=device))
cpu, cpu_s = timed(lambda: kcenter_greedy(features, labelled, cpu_picks, device="cpu"))
same = int(np.sum(gpu[:cpu_picks] == cpu))
faiss_gpu = device.startswith("cuda") and kcenter_module._faiss_gpus() > 0
print(f"## K-Center Greedy, {device} against CPU\n")
print(f"Embedding-like features {n:,} x {dim} (generated in {generate_s:.1f} s), {num_labelled:,} labelled; "
      f"initial search on {device}: {'faiss-gpu' if faiss_gpu else 'torch brute force' if device != 'cpu' else 'faiss'}.\n")
print(f"| run | picks | seconds | per pick incl. initial search (ms) |")
print(f"|---|---|---|---|")
print(f"| {device}, features already on the device | {cpu_picks:,} | {gpu_short_s:.2f} | {1000 * gpu_short_s / cpu_picks:.2f} |")
print(f"| {device}, features already on the device | {gpu_picks:,} | {gpu_s:.2f} | {1000 * gpu_s / gpu_picks:.2f} |")
print(f"| {device}, numpy features (copied in) | {gpu_picks:,} | {gpu_host_s:.2f} | {1000 * gpu_host_s / gpu_picks:.2f} |")
print(f"| cpu (threads: {kcenter_module._THREADS or 'all'}) | {cpu_picks:,} | {cpu_s:.2f} | "
      f"{1000 * cpu_s / cpu_picks:.2f} |")
print(f"\nHost-to-device copy of the features: {copy_s:.2f} s. Identical picks: {same}/{cpu_picks} "
      f"(the CPU's against the GPU's first {cpu_picks}); {cpu_picks} picks: {device} {cpu_s / gpu_short_s:.1f}x "
      f"faster than the CPU.")
if not (np.array_equal(gpu[:cpu_picks], gpu_short) and np.array_equal(gpu, gpu_host) and same == cpu_picks):
    raise SystemExit("picks differ between runs")
PY
section_of kcenter

# 3. Segmentation training throughput through the real pipeline, AMP on CUDA.
run_step segmentation 80 "$PY" - <<'PY'
import os, tempfile, time
from pathlib import Path
import torch
from ignite.engine import Events
from alseg_monai.data import SliceCache, SliceDataset, make_phantom, read_dataset, split_dataset
from alseg_monai.segmentation.engines import create_trainer, resolve_amp
from alseg_monai.segmentation.losses import SupervisedSegLoss
from alseg_monai.segmentation.trainer import create_train_loader
from alseg_monai.segmentation.transforms import train_augmentation
from alseg_monai.segmentation.unet import UNet2D

device = torch.device(os.environ["DEVICE"])
size, patients = int(os.environ["SEG_SIZE"]), int(os.environ["SEG_PATIENTS"])
warmup, iterations, workers = int(os.environ["SEG_WARMUP"]), int(os.environ["SEG_ITERATIONS"]), int(os.environ["SEG_WORKERS"])
start = time.perf_counter()
# Phantom patients (cardiac cine MR-like), all but two for training; their slices, preprocessed and cached.
root = make_phantom(Path(tempfile.mkdtemp(prefix="gpu_check_seg_")) / "phantom", patients, image_size=size, seed=0,
                    progress=False)
index = read_dataset("acdc", root)
parts = split_dataset(index, fractions=((patients - 2) / patients, 1 / patients, 1 / patients), seed=0)
cache = SliceCache(index.volumes, size, index.num_classes, index.ignore_index, progress=False)
prepare_s = time.perf_counter() - start
train = SliceDataset(parts["train"].slices, cache, keys=("image", "label"))
num_classes = index.num_classes
amp = resolve_amp(None, device)
rows = []
for batch in [int(b) for b in os.environ["SEG_BATCHES"].split()]:
    torch.manual_seed(0)
    network = UNet2D(in_channels=1, num_classes=num_classes).to(device)
    if amp:  # as RoundTrainer does
        network = network.to(memory_format=torch.channels_last)
    loader = create_train_loader(train, train_augmentation("label", seed=0), batch, num_workers=workers, seed=0,
                                 device=device)
    trainer = create_trainer(network, loader, SupervisedSegLoss(), warmup + iterations, device, amp=None)
    clock = {"slices": 0}

    @trainer.on(Events.ITERATION_COMPLETED)
    def count(engine, clock=clock):
        if engine.state.iteration == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            clock["start"] = time.perf_counter()
        elif engine.state.iteration > warmup:
            clock["slices"] += engine.state.output["image"].shape[0]

    trainer.run()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - clock["start"]
    rows.append((batch, clock["slices"], seconds))
print(f"## Segmentation training, {device}\n")
print(f"UNet2D (16-256), 0.5 CE + 0.5 Dice, paper SGD and augmentation, {len(train)} phantom slices at {size}x{size} "
      f"(prepared in {prepare_s:.0f} s), AMP {'on' if amp else 'off'}, {workers} loader workers; "
      f"{iterations} timed iterations after {warmup} warm-up ones.\n")
print("| batch | slices/s | s / iteration |")
print("|---|---|---|")
for batch, slices, seconds in rows:
    print(f"| {batch} | {slices / seconds:.1f} | {seconds / iterations:.3f} |")
PY
section_of segmentation

# 4. The smoke experiment end to end through the bundle, on the device.
BUNDLE=bundles/slice_active_learning
SMOKE_DIR=$OUT_DIR/smoke_run
rm -rf "$SMOKE_DIR"
run_step smoke 120 "$PY" -m monai.bundle run --bundle_root "$BUNDLE" \
    --meta_file "$BUNDLE/configs/metadata.json" --logging_file "$BUNDLE/configs/logging.conf" \
    --config_file "['$BUNDLE/configs/active_learning.json','$BUNDLE/configs/data/phantom.json','$BUNDLE/configs/smoke.json']" \
    --device "$DEVICE" --output_dir "$SMOKE_DIR" --phantom#root "$OUT_DIR/smoke_phantom"
{
    echo "## Smoke experiment, $DEVICE, end to end"
    echo
    echo "\`python -m monai.bundle run\` with active_learning.json + data/phantom.json + smoke.json, --device $DEVICE, in $SMOKE_DIR."
    echo
    if [[ -f "$SMOKE_DIR/results.md" ]]; then
        cat "$SMOKE_DIR/results.md"
    else
        echo "No results.md: the run did not finish (see logs/smoke.log)."
    fi
    echo
} >> "$SUMMARY"

{
    echo "## Status"
    echo
    echo "| step | result | seconds |"
    echo "|---|---|---|"
    printf '%s\n' "${STATUS[@]}"
    echo
    echo "Total: $(( SECONDS - START )) s (budget ${TOTAL_S} s)."
} >> "$SUMMARY"
cat "$SUMMARY"
exit "$FAILED"
