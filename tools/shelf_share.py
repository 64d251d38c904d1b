"""The time the shelf's methods (issue 24) add to the calls of older notebooks and tests that take every method
(`methods='all'`, or `cam_report`'s default): each call timed with `all_methods` and with the methods that came
before the shelf, on the demo model, in one process.

    python tools/shelf_share.py --fits FOLDER

FOLDER: a fit cache (tests/fit_cache.py) that holds the demo model, e.g. after
`python tools/cell_times.py tutorials/quickstart --fits FOLDER`; without it, the model is trained first (80 s)."""
import argparse, io, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT/'tests'):
    if str(p) not in sys.path: sys.path.insert(0, str(p))

BEFORE_THE_SHELF = ['CAM', 'GradCAM', 'GradCAMPlusPlus', 'XGradCAM', 'HiResCAM', 'LayerCAM', 'EigenCAM', 'ScoreCAM',
                    'AblationCAM']
# (where, what, arguments): the calls with every method in the notebooks and tests before issue 22
CALLS = [('quickstart', 'report', dict(n_items=16, steps=8)), ('quickstart', 'show', dict(items=[0, 1, 2])),
         ('index', 'report', dict(n_items=8, steps=8)), ('index', 'show', dict(items=0)),
         ('07_learner', 'show', dict(items=0)), ('test_demo', 'report', dict(n_items=8, steps=8)),
         ('14_cli', 'report', dict(n_items=2, steps=8))]

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0]); ap.add_argument('--fits', default=None)
    args = ap.parse_args()
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import torch
    torch.set_num_threads(1)
    from fit_cache import FitCache
    FitCache(args.fits or tempfile.mkdtemp()).install()
    from fastai.vision.all import set_seed
    from fastcam.all import make_digits, digits_dls, digits_boxes, cam_learner, all_methods
    path = Path(tempfile.gettempdir())/'fastcam_quickstart'
    make_digits(path, n_train=3000, n_valid=600)
    set_seed(42)
    learn = cam_learner(digits_dls(path, bs=64), ps=0.1)
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(4, 1e-2)
    every = all_methods(learn.model)
    older = [m for m in every if m.__name__ in BEFORE_THE_SHELF]
    boxes = digits_boxes(learn.dls)
    def run(what, methods, kw):
        start = time.perf_counter()
        if what == 'report': learn.cam_report(methods, boxes=boxes, progress=False, **kw)
        else:
            fig = learn.show_cams(kw['items'], methods=methods)
            fig.savefig(io.BytesIO(), format='png')  # as the notebooks' inline figures are drawn
            plt.close('all')
        return time.perf_counter() - start
    run('report', older, dict(n_items=2, steps=2))  # warm-up
    total = 0.
    print(f"{len(every)} methods against {len(older)} before the shelf")
    for where, what, kw in CALLS:
        a, b = run(what, every, kw), run(what, older, kw)
        total += a - b
        print(f"{where:12s} {what:7s} {kw}: {a:5.1f} s with every method, {b:5.1f} s without the shelf, +{a - b:4.1f} s")
    print(f"the shelf adds {total:.1f} worker-s to these calls")

if __name__ == '__main__': main()
