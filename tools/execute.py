"""Run notebooks and keep copies with their outputs in `_proc/executed/`, for the docs site (see tools/docs.py).

    python tools/execute.py                       # every notebook
    python tools/execute.py tutorials/quickstart  # some, by path under nbs/ (with or without .ipynb)

A copy is used by `mkdocs build` only while its notebook is unchanged. Cells marked `#| eval: false` are not run, nor
the cell that calls `nbdev_export()`. This trains the tutorials' models: minutes on a CPU."""
import json, sys, time
from pathlib import Path
from fastcore.nbio import read_nb, write_nb
from execnb.shell import CaptureShell
from fastcore.xtras import working_directory

ROOT = Path(__file__).resolve().parents[1]
if __name__ == '__main__' and str(ROOT) not in sys.path: sys.path.insert(0, str(ROOT))  # run as a script
from tools.docs import NBS, EXECUTED, notebooks, source_hash
from tools.notebooks import is_not_run

def _skip(cell) -> bool: return cell.cell_type != 'code' or is_not_run(cell.source)

def execute(rel: Path) -> float:
    "Run `nbs/rel` in its folder and write the copy with outputs; returns the seconds it took."
    src = NBS/rel
    nb = read_nb(src)
    start = time.time()
    shell = CaptureShell(src)
    with working_directory(src.parent): shell.run_all(nb, exc_stop=True, preproc=_skip)
    for cell in nb.cells: cell.metadata.pop('execution', None)  # execnb's timings, not valid nbformat
    nb.metadata['fastcam_docs'] = {'source': source_hash(json.loads(src.read_text(encoding='utf-8')))}
    (EXECUTED/rel).parent.mkdir(parents=True, exist_ok=True)
    write_nb(nb, EXECUTED/rel)
    return time.time() - start

if __name__ == '__main__':
    wanted = [Path(a if a.endswith('.ipynb') else a + '.ipynb') for a in sys.argv[1:]] or notebooks()
    for rel in wanted: print(f"{rel}: {execute(rel):.0f} s", flush=True)
