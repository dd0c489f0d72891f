"""Where benchmark results go and how they are written: one folder per CPU class.

``benchmarks/results/<CLASS>/`` (``AMX``, ``AVX512-BF16``, ``AVX2``, ``CUDA``; see
``benchmarks.machine``) holds each benchmark's ``NAME.json`` (everything, with the ``machine``
it ran on and the ``command``), ``NAME.md`` (its tables) and, for some, ``NAME.png`` (a chart).
A run writes into its own class's folder only, so the figures of the other classes stay as
they were, and then rewrites that folder's ``README.md``: one table, a row per result file,
with its date, CPU model, cores, load and headline figure.

``write_results`` does all of that (each file written whole under a temporary name, then
renamed); ``markdown_table`` and ``pyplot``/``save_figure`` are the table and chart helpers the
benchmarks share; ``latest_result`` finds the newest result of a name across the classes.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from benchmarks.machine import cpu_class, describe_machine, machine_line

RESULTS = Path(__file__).resolve().with_name("results")
INDEX = "README.md"
CLASS_NOTES = {
    "AMX": "CPUs with AMX tiles (amx_bf16, amx_int8): bf16 and int8 run on matrix units",
    "AVX512-BF16": "CPUs with AVX-512 bf16 dot products (avx512_bf16) but no AMX",
    "AVX2": "CPUs with AVX2 but neither AVX-512 bf16 nor AMX: bf16 is emulated there",
    "CUDA": "runs whose networks ran on an NVIDIA GPU",
    "other": "CPUs without AVX2 (or without Linux /proc/cpuinfo)",
}


def results_dir(device: str = "cpu", root: Path | None = None) -> Path:
    """The folder of this machine's class (``device`` as in ``machine.cpu_class``)."""
    return (root or RESULTS) / cpu_class(device)


def command_line(argv: Sequence[str] | None = None) -> str:
    """How this benchmark was started, as a user types it: ``python -m benchmarks.NAME ARGS``
    (after ``ONEDNN_MAX_CPU_ISA=…`` when the engines were capped, see ``machine``)."""
    from posestream_common.machine import CAP_ENV, avx2_capped

    argv = list(sys.argv if argv is None else argv)
    program = Path(argv[0]) if argv else Path("?")
    name = f"python -m benchmarks.{program.stem}" if program.parent.name == "benchmarks" else str(program)
    cap = [f"{CAP_ENV}={os.environ[CAP_ENV]}"] if avx2_capped() else []
    return " ".join([*cap, name, *argv[1:]])


def atomic_write(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` whole: a temporary file beside it, then renamed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text)
    os.replace(partial, path)
    return path


def write_results(stem: str, summary: dict[str, Any], markdown: str | Callable[[dict], str], *,
                  out: Path | None = None, chart: Callable[[dict, Path], Any] | None = None,
                  device: str = "cpu", headline: str | None = None,
                  load_before: list[float] | None = None) -> list[Path]:
    """``stem``.json, .md (and .png when ``chart`` draws one) in ``out`` (default: the class
    folder of ``device``); the summary gains ``machine`` (its load average: ``load_before``, the
    run's at its start, else now) and ``command`` where it lacks them, and ``headline`` (one line
    for the class table) when given.  Returns the paths written."""
    if not isinstance(summary.get("machine"), dict):
        summary["machine"] = describe_machine(device, with_versions=True)
        if load_before is not None:
            summary["machine"]["load_average"] = load_before
    summary.setdefault("command", command_line())
    if headline is not None:
        summary["headline"] = headline
    folder = results_dir(device) if out is None else Path(out)
    paths = [atomic_write(folder / f"{stem}.json", json.dumps(summary, indent=1, default=str) + "\n"),
             atomic_write(folder / f"{stem}.md", markdown if isinstance(markdown, str) else markdown(summary))]
    if chart is not None:
        png = folder / f"{stem}.png"
        partial = png.with_name(f".{png.stem}.partial.png")
        chart(summary, partial)
        if partial.exists():
            os.replace(partial, png)
            paths.append(png)
    if folder.resolve().parent == RESULTS:
        write_index(folder)
    elif folder.resolve().parent.parent == RESULTS:      # a run of its own (--out CLASS/NAME)
        write_index(folder.parent)
    return paths


def index_rows(folder: Path) -> list[dict[str, Any]]:
    """One row per result file of a class folder (and of its subfolders: runs kept apart with
    ``--out CLASS/NAME``): name (its path from the folder, no suffix), command, machine, headline."""
    rows = []
    for path in sorted(folder.glob("*.json")) + sorted(folder.glob("*/*.json")):
        try:
            summary = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        machine = summary.get("machine") if isinstance(summary.get("machine"), dict) else {}
        rows.append({"name": path.relative_to(folder).with_suffix("").as_posix(), "command": summary.get("command", ""), "machine": machine,
                     "headline": summary.get("headline", ""),
                     "chart": path.with_suffix(".png").is_file()})
    return rows


def write_index(folder: Path) -> Path:
    """The class folder's README.md: a row per result file, with date and CPU model."""
    name = folder.name
    lines = [f"# Benchmark results: {name} class", "",
             f"{CLASS_NOTES.get(name, 'machines of this class')}.  Each row is one benchmark's latest "
             f"run on a machine of this class (its `.json` has everything, its `.md` the tables); the "
             f"other classes' results are in the sibling folders.  Written by `benchmarks/store.py`.", ""]
    rows = []
    for row in index_rows(folder):
        machine = row["machine"]
        files = f"[{row['name']}.md]({row['name']}.md)" + (f", [png]({row['name']}.png)" if row["chart"] else "")
        load = machine.get("load_average") or ["?"]
        rows.append([files, f"`{row['command']}`" if row["command"] else "", str(machine.get("date", "?"))[:10],
                     machine.get("cpu", "?"), str(machine.get("cores", "?")), str(load[0]), row["headline"]])
    lines += markdown_table(("results", "command", "date", "CPU model", "cores", "load at start", "headline"),
                            rows)
    return atomic_write(folder / INDEX, "\n".join(lines) + "\n")


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]],
                   align: Sequence[str] | None = None) -> list[str]:
    """A Markdown table's lines; ``align``: one of ``l``/``r`` per column (default left)."""
    rule = ["---:" if (align and align[index] == "r") else "---" for index in range(len(header))]
    return (["| " + " | ".join(header) + " |", "|" + "|".join(rule) + "|"]
            + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows])


def machine_header(summary: dict[str, Any]) -> str:
    """The sentence a result's Markdown starts with: date, class, CPU model, cores, load."""
    machine = summary.get("machine")
    return f"Measured {machine_line(machine)}." if isinstance(machine, dict) else ""


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure: Any, path: Path, dpi: int = 110) -> Path:
    """Save a matplotlib figure to ``path`` and close it."""
    figure.tight_layout()
    figure.savefig(path, dpi=dpi)
    pyplot().close(figure)
    return path


def latest_result(names: Sequence[str], root: Path | None = None,
                  prefer: str | None = None) -> Path | None:
    """The result file of one of ``names`` (e.g. ``results.json``): in the class folder
    ``prefer`` when it has one, else the newest by its recorded date across the classes."""
    root = root or RESULTS
    if prefer is not None:
        for name in names:
            if (root / prefer / name).is_file():
                return root / prefer / name
    found = []
    for name in names:
        for path in root.glob(f"*/{name}"):
            try:
                date = str(json.loads(path.read_text()).get("machine", {}).get("date", ""))
            except (OSError, ValueError, AttributeError):
                date = ""
            found.append((date, -names.index(name), path))
    return max(found)[2] if found else None
