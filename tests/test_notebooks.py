"Run every notebook's tests (library notebooks and tutorials), one pytest test per notebook."
from pathlib import Path
import pytest, torch
from nbdev.test import test_nb as run_notebook
from fastcore.nbio import read_nb
from tools.execute import execute
from executed import DOCS_TUTORIAL, executed_lock

NBS = Path(__file__).resolve().parents[1]/'nbs'
NOTEBOOKS = sorted(p for p in NBS.rglob('*.ipynb')
                   if not any(part.startswith(('.', '_')) for part in p.relative_to(NBS).parts))
SKIP_FLAGS = [] if torch.cuda.is_available() else ['cuda']
CELL_TIMEOUT = 1800  # seconds; nbdev's 600 fails a training cell when other work shares the two cores

@pytest.mark.parametrize('notebook', NOTEBOOKS, ids=lambda p: str(p.relative_to(NBS)))
def test_notebook(notebook, monkeypatch):
    if notebook == NBS/DOCS_TUTORIAL and not _flagged(notebook):  # its run with outputs is the docs site's page
        monkeypatch.setenv('IN_TEST', '1')  # as nbdev's test_nb
        with executed_lock(): execute(notebook.relative_to(NBS))  # a failing cell raises here, with its traceback
        return
    ok, seconds = run_notebook(notebook, skip_flags=SKIP_FLAGS, cell_timeout=CELL_TIMEOUT)
    assert ok, f"{notebook.name} failed after {seconds:.1f}s: the traceback is printed above"

def _flagged(notebook) -> bool:
    "Whether a cell of `notebook` carries a flag this machine skips (`cuda`): tools/execute.py would run it."
    return any(f'#| {flag}' in cell.source for cell in read_nb(notebook).cells for flag in SKIP_FLAGS)
