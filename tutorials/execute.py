"""Execute the tutorial notebooks in place and clean their outputs for committing.

Usage, from the repository root (``make tutorials`` runs it over every notebook)::

    python tutorials/execute.py                      # every notebook, the settings in force
    ALSEG_TUTORIAL_SMOKE=1 python tutorials/execute.py tutorials/03_scribbles_dmpls.ipynb

Each notebook runs as the test suite runs it (``tests/tutorials/test_tutorials.py``): every
cell in order (nbclient) in a ``python3`` Jupyter kernel of this interpreter, started from
``tutorials/``, with ``ALSEG_TUTORIAL_DIR`` set to a new temporary folder (removed afterwards;
``--keep`` keeps it) and ``ALSEG_BUNDLE`` unset. ``ALSEG_TUTORIAL_SMOKE`` and the thread
variables (``OMP_NUM_THREADS``, ...) are passed on as set. A cell that raises leaves the
committed notebook unchanged and the script exits with status 1.

The outputs are then cleaned, so that a refresh only changes what the run changed:

* cell ``execution`` metadata (nbclient's timestamps) and notebook metadata the run added
  (``widgets``, the kernel's ``language_info`` version) are dropped; the notebook keeps its
  committed metadata;
* widget outputs are dropped (progress bars fall back to text anyway), consecutive stream
  outputs merged and carriage-return progress lines reduced to their last state;
* machine paths become placeholders: the temporary folder ``<tutorial_dir>``, the repository
  root ``<repo>``, an interpreter outside it ``<python>``, other temporary files ``<tmp>``, the
  home folder ``~``;
* times become ``…``: the seconds of the loop's ``round done:`` lines and the elapsed time and
  ETA of its ``rounds k/n done`` lines; ISO timestamps become ``<timestamp>``; memory addresses
  (``at 0x7f...``) become ``0x…``;
* PNG images are re-encoded without metadata, at most ``--max-width`` pixels wide (Pillow,
  Lanczos), as 256-colour palette images, so each stays small.

Finally every output is checked: a machine path or timestamp left over, or a notebook larger
than ``--max-bytes``, is an error (the notebook is not written).
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbclient
import nbformat

TUTORIALS = Path(__file__).resolve().parent
REPO = TUTORIALS.parent
MAX_WIDTH = 800        # pixels, of an embedded PNG
MAX_BYTES = 1_500_000  # of a notebook file
WIDGET_TYPES = ("application/vnd.jupyter.widget-view+json", "application/vnd.jupyter.widget-state+json")

# format_duration (alseg_monai.loop.progress): "42 s", "3 min 05 s", "2 h 07 min", "?"
DURATION = r"(?:\d+ h \d{2} min|\d+ min \d{2} s|\d+(?:\.\d+)? s|\?)"
TIMES = [
    # the loop's "round done: ... -> test Dice 0.8123, cost 5.00, 12 s"
    (re.compile(r"^(.*round done: .*, cost [\d.]+, )\d+(?:\.\d+)? s$", re.M), r"\1… s"),
    # RunProgress: "rounds 5/12 done (42%): ...; 3 this call in 1 min 05 s, ETA 2 min 10 s"
    (re.compile(rf"(\d+ this call in ){DURATION}(, ETA ){DURATION}"), r"\1…\2…"),
]
TIMESTAMP = re.compile(r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?")
ADDRESS = re.compile(r"\b0x[0-9a-fA-F]{6,}\b")
# What must not be left in any output (checked after cleaning).
LEAKS = re.compile(r"/work/|/tmp/|/root/|/home/|/Users/|/private/var/|" + TIMESTAMP.pattern + r"|\b0x[0-9a-fA-F]{6,}")


def kernel_path(root: Path) -> str:
    """A ``python3`` kernelspec under ``root`` that runs this interpreter (it shadows any
    other ``python3`` spec, so the notebooks import this checkout's alseg_monai); the
    ``JUPYTER_PATH`` value that finds it first."""
    spec = root / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "alseg_monai tutorials", "language": "python",
    }))
    return os.pathsep.join(filter(None, [str(root), os.environ.get("JUPYTER_PATH")]))


def path_replacements(work: Path) -> list[tuple[str, str]]:
    """(machine path, placeholder) pairs, longest path first, each also in its resolved form."""
    pairs = {}
    for path, placeholder in [(work, "<tutorial_dir>"), (REPO, "<repo>"), (Path(sys.prefix), "<python>"),
                              (Path(tempfile.gettempdir()), "<tmp>"), (Path.home(), "~")]:
        for form in {str(path), str(path.resolve()), os.path.realpath(path)}:
            if len(form) > 1:
                pairs.setdefault(form, placeholder)
    return sorted(pairs.items(), key=lambda pair: -len(pair[0]))


def clean_text(text: str, paths: list[tuple[str, str]]) -> str:
    for path, placeholder in paths:
        text = text.replace(path, placeholder)
    for pattern, replacement in TIMES:
        text = pattern.sub(replacement, text)
    text = TIMESTAMP.sub("<timestamp>", text)
    return ADDRESS.sub("0x…", text)


def last_state(text: str) -> str:
    """What a terminal shows of text with carriage returns: each line's last rewrite."""
    return "\n".join(line.rsplit("\r", 1)[-1] for line in text.split("\n"))


def shrink_png(data: str, max_width: int) -> str:
    """A base64 PNG re-encoded at most ``max_width`` wide, as a palette image without metadata."""
    from PIL import Image

    image = Image.open(io.BytesIO(base64.b64decode(data)))
    image.load()
    if image.mode in ("RGBA", "LA", "P"):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image)
    image = image.convert("RGB")
    if image.width > max_width:
        height = max(1, round(image.height * max_width / image.width))
        image = image.resize((max_width, height), Image.Resampling.LANCZOS)
    image = image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return base64.b64encode(out.getvalue()).decode("ascii")


def clean_outputs(outputs: list, paths: list[tuple[str, str]], max_width: int) -> list:
    merged = []  # consecutive stream outputs of one stream joined first: a path may span two
    for output in outputs:
        if (output.get("output_type") == "stream" and merged and merged[-1].get("output_type") == "stream"
                and merged[-1].name == output.name):
            merged[-1].text += output.text
        else:
            merged.append(output)
    cleaned = []
    for output in merged:
        kind = output.get("output_type")
        if kind == "stream":
            output.text = clean_text(last_state(output.text), paths)
            if output.text:
                cleaned.append(output)
            continue
        if kind in ("display_data", "execute_result"):
            data = output.get("data", {})
            for key in WIDGET_TYPES:
                data.pop(key, None)
            if not data or set(data) == {"text/plain"} and data["text/plain"].startswith(("HBox(", "VBox(")):
                continue  # a widget with nothing else to show
            for key, value in list(data.items()):
                if key == "image/png":
                    data[key] = shrink_png(value, max_width)
                elif key.startswith("text/") or key in ("application/javascript",):
                    data[key] = clean_text(value, paths)
            output.metadata = {k: v for k, v in output.get("metadata", {}).items()
                               if k not in ("image/png",)}  # its width / height described the old image
        elif kind == "error":
            output.evalue = clean_text(output.evalue, paths)
            output.traceback = [clean_text(line, paths) for line in output.traceback]
        cleaned.append(output)
    return cleaned


def output_texts(notebook) -> list[str]:
    """Every text an output holds (images excluded)."""
    texts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            texts.append(output.get("text", ""))
            texts.extend(v for k, v in output.get("data", {}).items() if isinstance(v, str) and k != "image/png")
            texts.extend([output.get("evalue", "")] + list(output.get("traceback", [])))
    return texts


def clean(notebook, metadata: dict, work: Path, max_width: int = MAX_WIDTH):
    """The executed ``notebook`` cleaned in place (see the module's docstring); returns it."""
    paths = path_replacements(work)
    notebook.metadata = nbformat.from_dict(metadata)
    for cell in notebook.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            cell.outputs = clean_outputs(cell.outputs, paths, max_width)
    leaks = sorted({match.group(0) for text in output_texts(notebook) for match in LEAKS.finditer(text)})
    if leaks:
        raise ValueError(f"outputs still hold machine paths or timestamps: {leaks}")
    return notebook


def execute(path: Path, timeout: int, max_width: int, max_bytes: int, keep: bool) -> float:
    """Run notebook ``path`` and write it back with its cleaned outputs; returns the seconds taken."""
    notebook = nbformat.read(str(path), as_version=4)
    metadata = json.loads(json.dumps(notebook.metadata))
    work = Path(tempfile.mkdtemp(prefix="alseg_tutorials_"))
    environment = dict(os.environ)
    try:
        os.environ["JUPYTER_PATH"] = kernel_path(work / "jupyter")
        os.environ["ALSEG_TUTORIAL_DIR"] = str(work / "runs")
        os.environ.pop("ALSEG_BUNDLE", None)  # the notebooks find the bundle from tutorials/
        start = time.perf_counter()
        client = nbclient.NotebookClient(notebook, kernel_name="python3", timeout=timeout, record_timing=False,
                                         resources={"metadata": {"path": str(TUTORIALS)}})
        try:
            client.execute()
        except (nbclient.exceptions.CellExecutionError, nbclient.exceptions.CellControlSignal,
                nbclient.exceptions.DeadKernelError):
            failed = work / path.name
            nbformat.write(notebook, str(failed))
            keep = True
            raise
        seconds = time.perf_counter() - start
        clean(notebook, metadata, work / "runs", max_width)
        nbformat.validate(notebook)
        text = nbformat.writes(notebook) + "\n"
        if len(text.encode()) > max_bytes:
            raise ValueError(f"{path.name}: {len(text.encode()):,} bytes with its outputs, more than {max_bytes:,}")
        path.write_text(text, encoding="utf-8")
        return seconds
    finally:
        os.environ.clear()
        os.environ.update(environment)
        if keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every tutorials/*.ipynb")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell (default 3600)")
    parser.add_argument("--max-width", type=int, default=MAX_WIDTH, help=f"of a PNG output (default {MAX_WIDTH})")
    parser.add_argument("--max-bytes", type=int, default=MAX_BYTES, help=f"of a notebook (default {MAX_BYTES:,})")
    parser.add_argument("--keep", action="store_true", help="keep each run's temporary folder")
    args = parser.parse_args(argv)
    notebooks = [p.resolve() for p in args.notebooks] or sorted(TUTORIALS.glob("*.ipynb"))
    smoke = bool(os.environ.get("ALSEG_TUTORIAL_SMOKE"))
    print(f"executing {len(notebooks)} notebook(s), {'smoke' if smoke else 'default'} settings", flush=True)
    for path in notebooks:
        before = path.stat().st_size
        try:
            seconds = execute(path, args.timeout, args.max_width, args.max_bytes, args.keep)
        except (nbclient.exceptions.CellExecutionError, nbclient.exceptions.CellControlSignal,
                nbclient.exceptions.DeadKernelError, ValueError) as error:
            print(f"{path.name}: FAILED, left unchanged\n{error}", file=sys.stderr)
            return 1
        print(f"{path.name}: {seconds:.0f} s, {before:,} -> {path.stat().st_size:,} bytes", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
