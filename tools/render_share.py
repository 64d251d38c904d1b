"""How much of a notebook's test run goes to drawing figures: the notebook run as tests/test_notebooks.py runs it
(nbdev's `test_nb`, figures rendered inline as PNG after each cell), printing the seconds spent in
matplotlib's rendering (`FigureCanvasBase.print_figure`, timed by a wrapper: nbdev runs the cells in another thread)
against the whole run.

    python tools/render_share.py tutorials/quickstart [--fits FOLDER]

`--fits` routes `fit_one_cycle` through tests/fit_cache.py's cache in FOLDER, so that a training stored there is
replayed and the shares are those of the rest of the notebook."""
import argparse, functools, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT/'tests'):
    if str(p) not in sys.path: sys.path.insert(0, str(p))

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('notebook'); ap.add_argument('--fits', default=None)
    args = ap.parse_args()
    import torch
    torch.set_num_threads(1)
    if args.fits:
        from fit_cache import FitCache
        FitCache(args.fits).install()
    from matplotlib.backend_bases import FigureCanvasBase
    from fastai.learner import Learner
    import fastai.callback.schedule  # noqa: F401  (Learner.fit_one_cycle)
    spent = {'print_figure': 0., 'fit_one_cycle': 0.}
    def timed(owner, name):
        original = getattr(owner, name)
        @functools.wraps(original)
        def wrapper(*a, **kw):
            start = time.perf_counter()
            try: return original(*a, **kw)
            finally: spent[name] += time.perf_counter() - start
        setattr(owner, name, wrapper)
    timed(FigureCanvasBase, 'print_figure'); timed(Learner, 'fit_one_cycle')
    from nbdev.test import test_nb
    nb = ROOT/'nbs'/(args.notebook if args.notebook.endswith('.ipynb') else args.notebook + '.ipynb')
    ok, seconds = test_nb(nb, skip_flags=['cuda'], cell_timeout=1800)
    print(f"{args.notebook}: ok={ok}, {seconds:.1f} s; print_figure (the inline PNGs) {spent['print_figure']:.1f} s, "
          f"fit_one_cycle {spent['fit_one_cycle']:.1f} s")

if __name__ == '__main__': main()
