"""The demo notebook runs headless (kernel side only: no browser, so nothing is posted)."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient

DEMO = Path(__file__).resolve().parents[2] / "notebooks" / "demo.ipynb"


def test_demo_notebook_executes(tmp_path: Path) -> None:
    nb = nbformat.read(DEMO, as_version=4)
    NotebookClient(
        nb, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = [
        out for cell in nb.cells if cell.cell_type == "code" for out in cell.get("outputs", [])
    ]
    assert not [out for out in outputs if out.output_type == "error"]
    widget_views = [
        out for out in outputs if "application/vnd.jupyter.widget-view+json" in out.get("data", {})
    ]
    assert len(widget_views) == 1, "the %chat cell displays one Chat widget"
    assert any("nbchat loaded" in out.get("text", "") for out in outputs)
