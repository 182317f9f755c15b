"""The MONAI Label app (monailabel/alseg) against a real ``monailabel start_server``.

Runs where the ``monailabel`` extra is installed (``pip install -e ".[monailabel]"``),
skipped elsewhere. Scenario (issue #13): a phantom studies folder; the server on
127.0.0.1 at a free port; ``POST /activelearning/gcl_coreset`` serves a volume and its
slices; ``PUT /datastore/label`` stores a label for those slices (zeros elsewhere);
a second call serves other slices; a short training (``POST /train/segmentation``,
polled on ``GET /train/``); ``POST /infer/segmentation`` returns a segmentation of the
volume's shape; the server is stopped at the end. Every wait has a deadline.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("monailabel.interfaces.app", reason="needs the monailabel extra: pip install -e '.[monailabel]'")
requests = pytest.importorskip("requests")
nib = pytest.importorskip("nibabel")
np = pytest.importorskip("numpy")

from alseg_monai.data import make_phantom  # noqa: E402

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "monailabel" / "alseg"
START_DEADLINE = 240.0  # the server imports torch, MONAI and MONAI Label
CALL_TIMEOUT = 180.0  # one HTTP call (a strategy's first call embeds every slice)
TRAIN_DEADLINE = 420.0  # the training subprocess: imports, 1 encoder epoch, a few iterations
STOP_DEADLINE = 30.0
CONF = {
    "bundle_configs": "data/phantom.json",
    "image_size": "32",
    "feature_dim": "32",
    "encoder_epochs": "1",
    "iterations": "4",
    "batch_size": "4",
    "budget": "3",
    "device": "cpu",
}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _studies(tmp_path: Path) -> tuple[Path, Path]:
    """A flat MONAI Label studies folder of phantom cine-MR volumes (4 patients x 2 frames)."""
    phantom = make_phantom(tmp_path / "phantom", 4, image_size=32, seed=0, slices=(4, 6), progress=False)
    studies = tmp_path / "studies"
    studies.mkdir()
    for image in sorted(phantom.glob("patient*/patient*_frame??.nii.gz")):
        shutil.copy(image, studies / image.name)
    return phantom, studies


def _server_command(app: Path, studies: Path, port: int) -> list[str]:
    script = Path(sys.executable).with_name("monailabel")
    base = [str(script)] if script.is_file() else [sys.executable, "-m", "monailabel.main"]
    command = base + ["start_server", "--app", str(app), "--studies", str(studies),
                      "--host", "127.0.0.1", "--port", str(port)]
    for key, value in CONF.items():
        command += ["--conf", key, value]
    return command


def _log_tail(log: Path, chars: int = 6000) -> str:
    try:
        return log.read_text(errors="replace")[-chars:]
    except OSError:
        return "<no server log>"


def _wait_ready(url: str, process: subprocess.Popen, log: Path) -> dict:
    deadline = time.monotonic() + START_DEADLINE
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"monailabel start_server exited with {process.returncode}:\n{_log_tail(log)}")
        try:
            response = requests.get(f"{url}/info/", timeout=10)
            if response.status_code == 200:
                return response.json()
        except requests.RequestException:
            pass
        time.sleep(1.0)
    pytest.fail(f"the server did not answer /info/ within {START_DEADLINE:.0f}s:\n{_log_tail(log)}")


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM to the server's own process group (it and its training subprocess), then SIGKILL."""
    if process.poll() is not None:
        return
    for sig, wait in ((signal.SIGINT, STOP_DEADLINE), (signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _check(response, what: str, log: Path):
    if response.status_code != 200:
        pytest.fail(f"{what}: HTTP {response.status_code} {response.text[:2000]}\n{_log_tail(log)}")
    return response


def _label_for(phantom: Path, image_id: str, slices: list[int]) -> bytes:
    """The phantom's ground truth on ``slices``, zeros elsewhere (an annotator's answer)."""
    patient = image_id.split("_")[0]
    truth = nib.load(str(phantom / patient / f"{image_id}_gt.nii.gz"))
    array = np.asarray(truth.dataobj)
    label = np.zeros_like(array)
    label[..., slices] = array[..., slices]
    return gzip.compress(nib.Nifti1Image(label, truth.affine).to_bytes())


def _volume_shape(studies: Path, image_id: str) -> tuple[int, ...]:
    return tuple(nib.load(str(studies / f"{image_id}.nii.gz")).shape)


def test_active_learning_round_trip_on_a_real_server(tmp_path):
    phantom, studies = _studies(tmp_path)
    # The server writes model/, logs/ and bin/ into the app folder: run a copy.
    app = tmp_path / "app"
    shutil.copytree(APP, app, ignore=shutil.ignore_patterns("model", "logs", "bin", "__pycache__", ".env"))
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "server.log"
    # The `monailabel` script runs `$MONAILABEL_PYEXE -m monailabel.main` (default: the `python` on PATH).
    env = {**os.environ, "MONAILABEL_PYEXE": sys.executable, "MONAI_LABEL_SESSIONS": "false",
           "MONAI_LABEL_AUTO_UPDATE_SCORING": "false", "PYTHONUNBUFFERED": "1"}
    with open(log, "wb") as sink:
        process = subprocess.Popen(_server_command(app, studies, port), cwd=tmp_path, env=env, stdout=sink,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        info = _wait_ready(url, process, log)
        assert {"gcl_coreset", "coreset", "random"} <= set(info["strategies"])
        assert "segmentation" in info["trainers"] and "segmentation" in info["models"]

        # 1. The first answer: a volume and slices of it.
        first = _check(requests.post(f"{url}/activelearning/gcl_coreset", json={}, timeout=CALL_TIMEOUT),
                       "activelearning 1", log).json()
        image_id, slices = first["id"], first["slices"]
        shape = _volume_shape(studies, image_id)
        assert first["num_slices"] == shape[2] and first["slice_axis"] == 2
        assert slices and len(slices) <= 3 and all(0 <= z < shape[2] for z in slices)
        assert len(first["slice_positions"]) == len(slices)

        # 2. A label for those slices marks exactly them as annotated.
        saved = _check(requests.put(f"{url}/datastore/label", params={"image": image_id, "tag": "final"},
                                    files={"label": (f"{image_id}.nii.gz", io.BytesIO(_label_for(phantom, image_id,
                                                                                                  slices)))},
                                    data={"params": json.dumps({"client_id": "pytest"})}, timeout=CALL_TIMEOUT),
                       "save label", log).json()
        assert saved["alseg"]["covered"] == sorted(slices)
        assert saved["alseg"]["source"] == "request"
        registry = json.loads((studies / ".alseg" / "slices.json").read_text())
        assert registry["images"][image_id]["annotated"] == sorted(slices)

        # 3. The next answer never repeats an annotated slice.
        second = _check(requests.post(f"{url}/activelearning/gcl_coreset", json={}, timeout=CALL_TIMEOUT),
                        "activelearning 2", log).json()
        assert second["slices"]
        if second["id"] == image_id:
            assert not set(second["slices"]) & set(slices)
        served = {(image_id, z) for z in slices}
        assert not {(second["id"], z) for z in second["slices"]} & served

        # 4. A short training, polled until it ends.
        _check(requests.post(f"{url}/train/segmentation", json={"encoder_epochs": 1, "iterations": 4},
                             timeout=CALL_TIMEOUT), "train", log)
        deadline, status = time.monotonic() + TRAIN_DEADLINE, None
        while time.monotonic() < deadline:
            response = requests.get(f"{url}/train/", timeout=30)
            status = response.json() if response.status_code == 200 else None
            if status and status.get("status") in ("DONE", "ERROR", "STOPPED"):
                break
            time.sleep(2.0)
        else:
            requests.delete(f"{url}/train/", timeout=30)
            pytest.fail(f"training did not finish within {TRAIN_DEADLINE:.0f}s: {status}\n{_log_tail(log)}")
        assert status["status"] == "DONE", f"training ended {status}\n{_log_tail(log)}"
        stats = requests.get(f"{url}/info/", timeout=30).json()["train_stats"]["segmentation"]
        assert stats["segmentation"]["slices"] == len(slices)
        assert stats["segmentation"]["annotated"] == {image_id: sorted(slices)}
        assert 0.0 <= stats["segmentation"]["fit_dice"] <= 1.0  # scored once, on the annotated slices
        assert stats["encoder"]["epochs"] == 1

        # 5. The trained model's 3D segmentation has the volume's shape.
        response = _check(requests.post(f"{url}/infer/segmentation", params={"image": image_id, "output": "image"},
                                        timeout=CALL_TIMEOUT), "infer", log)
        result = tmp_path / "segmentation.nii.gz"
        result.write_bytes(response.content)
        segmentation = nib.load(str(result))
        assert segmentation.shape == shape
        values = np.unique(np.asarray(segmentation.dataobj))
        assert values.min() >= 0 and values.max() < 4
    finally:
        _stop(process)
    assert process.poll() is not None, "the server is still running"
