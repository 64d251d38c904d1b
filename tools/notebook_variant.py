"""A notebook's code run with a few texts replaced, printing chosen figures: to check that a shorter training (fewer
pictures, epochs) keeps a tutorial's checks and figures before changing it.

    python tools/notebook_variant.py tutorials/multilabel --sub "n_train=3000" "n_train=2000" \
        --sub "set_seed(42)" "set_seed(1)" --upto 20 --print "learn.recorder.values[-1][2]" "table.round(3)"

Cells run in order in one namespace, with one torch thread (the suite's setting), matplotlib's Agg backend and the
temporary folder moved to a fresh one (notebooks write fixed folders under it); cells marked not to run are skipped,
`--upto N` stops after cell N, a failing `#| hide` check is reported and the run goes on."""
import argparse, os, sys, tempfile, time
from pathlib import Path
import matplotlib
matplotlib.use('Agg')
import torch
from fastcore.nbio import read_nb
from fastcore.xtras import working_directory

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path: sys.path.insert(0, str(ROOT))
from tools.notebooks import is_not_run

def run(rel: str, subs: list, upto: int | None, show: list):
    torch.set_num_threads(1)
    os.environ['TMPDIR'] = tempfile.mkdtemp(); tempfile.tempdir = None
    src = ROOT/'nbs'/(rel if rel.endswith('.ipynb') else rel + '.ipynb')
    env, used = {'__name__': '__main__'}, set()
    with working_directory(src.parent):
        for i, cell in enumerate(read_nb(src).cells):
            if upto is not None and i > upto: break
            if cell.cell_type != 'code' or is_not_run(cell.source) or 'nbdev_export' in cell.source: continue
            code = cell.source
            for old, new in subs:
                if old in code: code, _ = code.replace(old, new), used.add(old)
            code = '\n'.join(l for l in code.splitlines() if not l.lstrip().startswith(('!', '%')))
            start = time.perf_counter()
            try: exec(compile(code, f'cell {i}', 'exec'), env)
            except AssertionError as e:
                print(f"cell {i}: a check fails: {e}")
                continue
            if time.perf_counter() - start > 5: print(f"cell {i}: {time.perf_counter() - start:.0f} s", flush=True)
    unused = [old for old, _ in subs if old not in used]
    if unused: print(f"never replaced: {unused}")
    for expr in show: print(f"{expr} = {eval(expr, env)}")

if __name__ == '__main__':
    p = argparse.ArgumentParser()
    p.add_argument('notebook'); p.add_argument('--sub', nargs=2, action='append', default=[])
    p.add_argument('--upto', type=int); p.add_argument('--print', nargs='*', default=[], dest='show')
    a = p.parse_args()
    run(a.notebook, a.sub, a.upto, a.show)
