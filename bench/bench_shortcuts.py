"""Shortcuts with no annotation (issue 25): find, confirm and fix on harder variants of the shortcut task, and what
the find pass and the fix cost.

    python bench/bench_shortcuts.py [--variants V ...] [--seeds 0 1 2] [--epochs 3] [--threads 1] [--speed]

A variant is the digits task (2000 / 400 pictures) with a shortcut on the training 7s only (`plant_shortcut`):
`corner` (a yellow square in the top-left corner of every 7), `corner:0.7` and `corner:0.4` (of 70% and 40% of them),
`random_corner`, `random_place`, `tint` (an orange cast over the 7s), or `clean` (no shortcut). Each row trains
`cam_learner(dls, ps=0.1)` with `fit_one_cycle(epochs, 1e-2)` at batch 32, judges it on the clean validation pictures
(accuracy, accuracy on the 7s) and on the clean validation non-7s with the variant's shortcut pasted (the share called
7; the top-left square for `clean`), runs `find_shortcuts` and `test()` on every candidate, and if one is confirmed
trains a new model the same way with `ShortcutEraser` on the confirmed candidates and judges it again. Rows are
written to bench/results.md as they end, so a run cut short keeps the rows it finished.

`--speed` instead measures, side by side on the `corner` and `random_place` models: `find_shortcuts` against an
inference pass (`learn.get_preds`) over the same training items, and a training step with `ShortcutEraser` against a
plain one. `--threads` holds torch and numpy's BLAS to that many threads; `--speed` also times `find_shortcuts` with
the BLAS on its default count (on a busy 2-core machine, its 2 threads made SpRAy's eigendecompositions 100x slower)."""
import argparse, json, tempfile, time
from pathlib import Path
import numpy as np
import torch
from PIL import Image
from threadpoolctl import threadpool_info, threadpool_limits
from fastai.vision.all import set_seed
from fastcam.data import digits_dls, make_digits, read_labels
from fastcam.learner import cam_learner
from fastcam.shortcuts import ShortcutEraser, add_shortcut, find_shortcuts, plant_shortcut
from results import record

MARKED = '7'
ROOT = Path(tempfile.gettempdir())/'fastcam_bench_shortcuts'
ROWS = ROOT/'rows.json'

def variant_data(variant: str, n_train: int, n_valid: int) -> tuple:
    "The folder of the variant's pictures and the kind of shortcut pasted on the non-7s to judge it."
    clean = ROOT/f'{n_train}_{n_valid}'/'clean'
    make_digits(clean, n_train=n_train, n_valid=n_valid)
    if variant == 'clean': return clean, 'corner'
    kind, _, fraction = variant.partition(':')
    dest = ROOT/f'{n_train}_{n_valid}'/variant.replace(':', '_')
    plant_shortcut(clean, dest, MARKED, kind, fraction=float(fraction or 1.), splits=('train',))
    return dest, kind

def train(path: Path, seed: int, epochs: int, cbs=None):
    set_seed(seed)
    learn = cam_learner(digits_dls(path, bs=32, seed=seed), ps=0.1, cbs=cbs)
    start = time.perf_counter()
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(epochs, 1e-2)
    return learn, time.perf_counter() - start

def predictions(learn, items) -> torch.Tensor:
    with learn.no_bar(): return learn.get_preds(dl=learn.dls.test_dl(items))[0].argmax(1)

def judge(learn, clean: Path, kind: str) -> dict:
    "Accuracy and accuracy on the 7s on the clean validation pictures; the share of non-7s with the shortcut called 7."
    df = read_labels(clean/'labels.csv')
    valid = df[df.is_valid]
    labels = torch.tensor([learn.dls.vocab.o2i[label] for label in valid.label])
    right = (predictions(learn, [clean/f for f in valid.fname]) == labels).float()
    seven = learn.dls.vocab.o2i[MARKED]
    rng = np.random.default_rng(1)
    others = [add_shortcut(Image.open(clean/f), kind, rng) for f in valid.fname[valid.label != MARKED]]
    return {'accuracy': right.mean().item(), '7s': right[labels == seven].mean().item(),
            'called 7': (predictions(learn, others) == seven).float().mean().item()}

def row(variant: str, seed: int, epochs: int, n_train: int, n_valid: int) -> dict:
    path, kind = variant_data(variant, n_train, n_valid)
    clean = ROOT/f'{n_train}_{n_valid}'/'clean'
    learn, fit_s = train(path, seed, epochs)
    before = judge(learn, clean, kind)
    start = time.perf_counter()
    found = find_shortcuts(learn)
    find_s = time.perf_counter() - start
    tests = found.test()
    confirmed = found.confirmed()
    out = {'variant': variant, 'seed': seed, 'epochs': epochs, 'before': before, 'fit s': fit_s, 'find s': find_s,
           'found': [f"{c.kind} {c.name} {c.box or ''} {c.share:.0%}".replace('  ', ' ') for c in found],
           'tests': [f"{t.check} {t.effect:.0%} vs {t.baseline:.0%}" for t in tests],
           'confirmed': [f"{c.kind} {c.box or ''}".strip() for c in confirmed]}
    if confirmed:
        fixed, fix_s = train(path, seed, epochs, cbs=ShortcutEraser(confirmed))
        out.update({'after': judge(fixed, clean, kind), 'fix fit s': fix_s})
    return out

SECTION = 'bench_shortcuts: find, confirm and fix a shortcut with no annotation'
HEADER = ['variant', 'seed', 'clean acc. before', 'clean 7s before', 'marked non-7s called 7 before', 'found',
          'test (effect vs random)', 'confirmed', 'clean acc. after', 'clean 7s after', 'marked non-7s called 7 after']

def write(a):
    rows = json.loads(ROWS.read_text()) if ROWS.exists() else {}
    order = {v: i for i, v in enumerate(['corner', 'corner:0.7', 'corner:0.4', 'random_corner', 'random_place', 'tint',
                                         'clean'])}
    table = []
    pct = lambda v: f"{v:.1%}"
    for r in sorted(rows.values(), key=lambda r: (order.get(r['variant'], 99), r['seed'])):
        b, after = r['before'], r.get('after')
        table.append([r['variant'], r['seed'], pct(b['accuracy']), pct(b['7s']), pct(b['called 7']),
                      '; '.join(r['found']) or 'nothing found', '; '.join(r['tests']) or '-',
                      '; '.join(r['confirmed']) or 'none'] +
                     ([pct(after['accuracy']), pct(after['7s']), pct(after['called 7'])] if after else ['-'] * 3))
    record(SECTION, HEADER, table, threads=a.threads,
           notes=f"The digits task ({a.n_train} / {a.n_valid} pictures) with a shortcut on the training 7s only "
                 f"(`plant_shortcut`; the validation pictures are clean): `corner` a 6 px yellow square in the "
                 f"top-left corner of every 7 (`:0.7`, `:0.4` of 70% and 40% of them), `random_corner`, "
                 f"`random_place`, `tint` (an orange cast, 30%), `clean` none. `cam_learner(dls, ps=0.1)`, "
                 f"`fit_one_cycle({a.epochs}, 1e-2)`, batch 32, seeded. Before: the model trained on the variant; "
                 f"judged on the clean validation pictures, and on the clean non-7s with the variant's shortcut pasted "
                 f"(the corner square for `clean`). `find_shortcuts(learn)` and `test()` of each candidate with their "
                 f"defaults (margin 25 points); after: a new model trained the same way with "
                 f"`ShortcutEraser(confirmed)` (its default `p`: 0.5, 0.8 for a colour cast), when a candidate was confirmed. "
                 f"Every row is from the current code (colour candidates, the eraser's region narrowed to the mark, "
                 f"a cast shifted by `_shift_colours`). Command: `python "
                 f"bench/bench_shortcuts.py --threads {a.threads} --seeds SEED ... --variants VARIANT ...`.")

def step_cost(learn, path: Path, candidates: list, variant: str) -> list:
    "A training step (forward, backward, optimizer) with ShortcutEraser's before_batch against one without, alternated."
    set_seed(0)
    l = cam_learner(digits_dls(path, bs=32), ps=0.1)
    eraser = ShortcutEraser(candidates)
    eraser.learn = l
    eraser.before_fit()
    l.create_opt()
    l.model.train()
    l.training = True
    batches = [b for _, b in zip(range(16), l.dls.train)]
    def step(x, y, erase: bool):
        start = time.perf_counter()
        if erase:
            l.xb, l.yb = (x,), (y,)
            eraser.before_batch()
            x = l.xb[0]
        loss = l.loss_func(l.model(x), y)
        loss.backward()
        l.opt.step()
        l.opt.zero_grad()
        return time.perf_counter() - start
    plain, erased = [], []
    for x, y in batches * 2:
        plain.append(step(x, y, False))
        erased.append(step(x, y, True))
    plain, erased = np.median(plain[4:]), np.median(erased[4:])  # the first steps warm up
    return [f'training step with ShortcutEraser ({candidates[0].kind}), {variant}', f'{plain * 1e3:.1f} ms',
            f'{erased * 1e3:.1f} ms', f'{erased / plain:.2f}']

def speed(a):
    "find_shortcuts against an inference pass, and a step with ShortcutEraser against a plain one, side by side."
    rows = []
    for variant in ['corner', 'random_place']:
        path, _ = variant_data(variant, a.n_train, a.n_valid)
        learn, _ = train(path, 0, a.epochs)
        found = find_shortcuts(learn)
        found.test()
        dl = learn.dls.test_dl(learn.dls.train_ds.items, with_labels=True, bs=32)
        blas = sorted({a.threads, a.blas_default})  # numpy's BLAS held to torch's threads, and on its own default
        infer, find = [], {n: [] for n in blas}
        for _ in range(3):  # alternated, so that a busy moment of the machine hits both
            start = time.perf_counter()
            with learn.no_bar(): learn.get_preds(dl=dl)
            infer.append(time.perf_counter() - start)
            for n in blas:
                with threadpool_limits(n, user_api='blas'):
                    start = time.perf_counter()
                    find_shortcuts(learn, dl=dl)
                    find[n].append(time.perf_counter() - start)
        for n in blas:
            rows.append([f'find_shortcuts, {variant} model, BLAS on {n} thread(s)', f'{min(infer):.2f}',
                         f'{min(find[n]):.2f}', f'{min(find[n]) / min(infer):.2f}'])
        confirmed = found.confirmed() or list(found)[:1]
        if not confirmed: continue
        rows.append(step_cost(learn, path, confirmed, variant))
    record('bench_shortcuts --speed: what finding and fixing cost', ['what', 'plain', 'with fastcam', 'ratio'], rows,
           threads=a.threads,
           notes=f"Side by side in one run, models trained {a.epochs} epoch(s). find_shortcuts (the pass and the "
                 f"candidates, not test()) against `learn.get_preds` over the same {a.n_train} training pictures "
                 f"(batch 32), best of 3, alternated; a training step (forward, backward, optimizer; batch 32) with "
                 f"`ShortcutEraser(candidate).before_batch` against one without, median of 28 alternated steps. Torch on "
                 f"{a.threads} thread(s); numpy's BLAS (SpRAy's eigendecompositions in find_shortcuts) on as many "
                 f"(threadpoolctl, as in the other runs of this script) and on its default {a.blas_default}. "
                 f"Command: `python bench/bench_shortcuts.py --speed --threads {a.threads} --epochs {a.epochs}`.")

def main():
    p = argparse.ArgumentParser()
    p.add_argument('--variants', nargs='+', default=['corner', 'corner:0.7', 'corner:0.4', 'random_corner',
                                                     'random_place', 'tint', 'clean'])
    p.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    p.add_argument('--epochs', type=int, default=3)
    p.add_argument('--n-train', type=int, default=2000)
    p.add_argument('--n-valid', type=int, default=400)
    p.add_argument('--threads', type=int, default=1, help="torch's threads and numpy's BLAS threads")
    p.add_argument('--speed', action='store_true')
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    a.blas_default = max([i['num_threads'] for i in threadpool_info() if i['user_api'] == 'blas'] or [1])
    threadpool_limits(a.threads)  # numpy's BLAS too: on its default 2 threads beside a busy torch, eigh was 100x slower
    ROOT.mkdir(parents=True, exist_ok=True)
    if a.speed: return speed(a)
    for seed in a.seeds:  # every variant at one seed before the next seed
        for variant in a.variants:
            out = row(variant, seed, a.epochs, a.n_train, a.n_valid)
            print('ROW', json.dumps(out), flush=True)
            rows = json.loads(ROWS.read_text()) if ROWS.exists() else {}
            rows[f"{variant}|{seed}|{a.epochs}"] = out
            ROWS.write_text(json.dumps(rows))
            write(a)

if __name__ == '__main__': main()
