"Run every notebook's tests (library notebooks and tutorials), one pytest test per notebook."
from pathlib import Path
import pytest, torch
from nbdev.test import test_nb as run_notebook

NBS = Path(__file__).resolve().parents[1]/'nbs'
NOTEBOOKS = sorted(p for p in NBS.rglob('*.ipynb')
                   if not any(part.startswith(('.', '_')) for part in p.relative_to(NBS).parts))
SKIP_FLAGS = [] if torch.cuda.is_available() else ['cuda']

@pytest.mark.parametrize('notebook', NOTEBOOKS, ids=lambda p: str(p.relative_to(NBS)))
def test_notebook(notebook):
    ok, seconds = run_notebook(notebook, skip_flags=SKIP_FLAGS)
    assert ok, f"{notebook.name} failed after {seconds:.1f}s: the traceback is printed above"
