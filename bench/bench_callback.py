"""What `CAMCallback(items=16)` adds to the time of a fit, on the demo task (CPU).

    python bench/bench_callback.py [--epochs 3] [--items 16] [--repeats 1] [--threads 2] [--path DIR]

Makes the digits task with `make_digits` (cached in --path), then fits `cam_learner(digits_dls(path))` with
`fit_one_cycle(epochs, 1e-2)` with and without the callback, seeded alike, in interleaved order (plain, watched,
then watched, plain, ...). Prints the fit times, the time spent inside the callback's events, the overhead ratio
(target < 3%, ARCHITECTURE.md section 5) and where the callback's time goes: the maps (one forward of the items) or the
picture. Also checks that both fits end with the same losses, bit for bit. Records the figures in bench/results.md (see
bench/results.py)."""
import argparse, statistics, tempfile, time
from pathlib import Path
import matplotlib
matplotlib.use('Agg')
import torch
from fastai.vision.all import set_seed
from fastcam.callback import CAMCallback, _grid_png
from fastcam.data import make_digits, digits_dls
from fastcam.learner import cam_learner
from results import record

class TimedCAMCallback(CAMCallback):
    "`CAMCallback` that adds up the seconds spent in its events."
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seconds = 0.
    def _timed(self, event):
        start = time.perf_counter()
        getattr(super(), event)()
        self.seconds += time.perf_counter() - start
    def before_fit(self): self._timed('before_fit')
    def before_train(self): self._timed('before_train')
    def after_epoch(self): self._timed('after_epoch')

def fit(path, out, epochs, lr, bs, cb=None):
    "Seconds of one seeded `fit_one_cycle`, and its losses."
    set_seed(0, reproducible=True)
    learn = cam_learner(digits_dls(path, bs=bs), path=out)
    with learn.no_bar(), learn.no_logging():
        start = time.perf_counter()
        learn.fit_one_cycle(epochs, lr, cbs=[cb] if cb is not None else [])
        seconds = time.perf_counter() - start
    return seconds, [l.item() for l in learn.recorder.losses], learn

def parts(learn, cb, repeats=5):
    "Median seconds of the callback's two parts on the trained learner: the maps of the items, and the picture."
    cb.learn = learn
    cb.before_fit()
    def maps(): cb._compute()
    def picture():
        _grid_png(cb._images, cb.history[max(cb.history)], cb._titles(max(cb.history)), [None] * len(cb._images), 'x')
    out = {}
    for name, f in (('maps', maps), ('picture', picture)):
        f()
        times = []
        for _ in range(repeats):
            start = time.perf_counter(); f(); times.append(time.perf_counter() - start)
        out[name] = statistics.median(times)
    cb.after_fit()
    return out

def main():
    p = argparse.ArgumentParser()
    p.add_argument('--epochs', type=int, default=3)
    p.add_argument('--items', type=int, default=16)
    p.add_argument('--repeats', type=int, default=1, help='pairs of fits (plain, watched), in alternating order')
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--bs', type=int, default=64)
    p.add_argument('--lr', type=float, default=1e-2)
    p.add_argument('--path', default=str(Path.home()/'.cache'/'fastcam'/'bench_callback'))
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    path = Path(a.path)
    start = time.perf_counter()
    df = make_digits(path)
    print(f"data: {(~df.is_valid).sum()} training / {df.is_valid.sum()} validation pictures in {path} "
          f"({time.perf_counter() - start:.1f} s)")
    out = Path(tempfile.mkdtemp())
    plain_times, watched_times, inside, same = [], [], [], True
    for r in range(a.repeats):
        order = ['plain', 'watched'] if r % 2 == 0 else ['watched', 'plain']
        results = {}
        for kind in order:
            cb = TimedCAMCallback(items=a.items) if kind == 'watched' else None
            results[kind] = fit(path, out/kind, a.epochs, a.lr, a.bs, cb) + (cb,)
            print(f"  {kind:8s} fit {results[kind][0]:7.1f} s" +
                  (f"  (inside the callback {cb.seconds:.2f} s, {len(cb.history)} records)" if cb else ''))
        plain_times.append(results['plain'][0])
        watched_times.append(results['watched'][0])
        inside.append(results['watched'][3].seconds)
        same &= results['plain'][1] == results['watched'][1]
    plain, watched, cb_seconds = map(statistics.median, (plain_times, watched_times, inside))
    pngs = sorted((out/'watched'/'cams').glob('*.png'))
    learn, cb = results['watched'][2], results['watched'][3]
    split = parts(learn, cb)
    print(f"\nCAMCallback(items={a.items}), {a.epochs} epochs of fit_one_cycle, {torch.get_num_threads()} threads, "
          f"median of {a.repeats} pair(s)")
    print(f"  fit without the callback   {plain:8.1f} s")
    print(f"  fit with the callback      {watched:8.1f} s   difference {watched - plain:+.1f} s "
          f"({(watched - plain) / plain:+.1%}, noisy on a shared machine)")
    print(f"  inside the callback        {cb_seconds:8.2f} s   overhead ratio {cb_seconds / watched:.2%} of the fit "
          f"(target < 3%)  {'PASS' if cb_seconds / watched < 0.03 else 'FAIL'}")
    print(f"  per record: maps of {a.items} items {split['maps'] * 1e3:.0f} ms, "
          f"picture {split['picture'] * 1e3:.0f} ms; "
          f"one epoch {plain / a.epochs:.1f} s: the maps are {split['maps'] / (plain / a.epochs):.2%} of an epoch")
    print(f"  {len(pngs)} pictures written; same losses with and without, bit for bit: {same}")
    rows = [['fit without the callback (s)', round(plain, 1)], ['fit with the callback (s)', round(watched, 1)],
            ['inside the callback (s)', round(cb_seconds, 2)],
            ['overhead: inside the callback / fit with it', f"{cb_seconds / watched:.2%} (target < 3%)"],
            [f'maps of {a.items} items, per record (ms)', round(split['maps'] * 1e3)],
            ['picture, per record (ms)', round(split['picture'] * 1e3)],
            ['same losses with and without, bit for bit', same]]
    notes = (f"CAMCallback(items={a.items}) on the demo task (`cam_learner(digits_dls(...))`, {len(df)} pictures), "
             f"{a.epochs} epochs of fit_one_cycle, median of {a.repeats} pair(s) of fits; "
             f"`python bench/bench_callback.py --epochs {a.epochs} --repeats {a.repeats}`")
    print('recorded in', record('bench_callback: what CAMCallback adds to a fit', ['figure', 'value'], rows, notes,
                                threads=a.threads))

if __name__ == '__main__': main()
