"""How well SpRAy (`cluster_maps`) finds the marked 7s of the shortcut of `nbs/12_cluster.ipynb`, over training seeds.

The task is the notebook's: `make_digits` (2,000 training and 400 validation pictures), `mark_digits` with a yellow mark
on 40% of the 7s (training and validation, seed 0), `cam_learner(dls, ps=0.1)` trained by `fit_one_cycle(3, 1e-2)` on
one torch thread after `set_seed(seed)` (the notebook's seed is 42). The maps of every item's own class over all 2,400
items; the 240 7s among them are clustered with their digits' boxes, and the items of the flagged clusters are graded
against the 96 marked 7s: precision (share of the flagged items that are marked) and recall (share of the marked 7s
that are flagged). The same clustering of a model trained on the clean pictures (same seed) must flag nothing.

    python tools/spray_recall.py                       # seeds 42 1 2, every setting
    python tools/spray_recall.py --seeds 3 4           # held-out seeds
    python tools/spray_recall.py --seeds 42 --only 'outside=True'

Each setting names what it changes from the notebook's call `cluster_maps(res, seven, boxes=boxes, img_size=64,
outside=True)` on the CAM of the body's output (resnet18's layer2, 8x8 maps), and each is graded under two flag rules,
computed here from the clusters and the items' energy in box (`energy_in_box` with the true boxes), so that a change of
`cluster_maps`' own rule does not change what a row means:

- `median-0.1`: the rule before the fix, a cluster's mean energy in box more than 0.1 below the median cluster's and
  below 0.45;
- `1 SD`: the rule after it, a cluster's mean energy in box more than one pooled within-cluster standard deviation below
  the mean of the class's other items.

The rows measure `cluster_maps` as installed. Before the fix, `outside=True` weighted each cell of the map by the
share of it that the box leaves uncovered; since, it drops every cell (of the maps' own grid) that the box touches.
`snapped` passes each box grown outwards to the 8 px cells of the 8x8 maps, which gives the same features with either
library: on the one before the fix it emulates the fix, after it it changes nothing. The figures before and after are
in `nbs/12_cluster.ipynb` (*Finding a shortcut*); the "before" ones come from this script run against fastcam as it
was before the fix (the parent of the commit that added this script). Each cell of the table reads
`precision / recall (clusters found, flagged) clusters flagged for the clean model`.

Trained models and their maps are cached under --root (default /tmp/spray_recall), so trying clustering settings does
not train again (a model trains in about a minute on one thread); `--retrain` ignores the cache.
"""
import argparse, time
from pathlib import Path

import numpy as np
import torch
from fastai.torch_core import set_seed
import fastai.callback.schedule  # noqa: F401  (adds learn.fit_one_cycle)
from fastcam.all import make_digits, mark_digits, digits_dls, cam_learner, cluster_maps, CAMResult, energy_in_box

THREADS = 1  # the notebook's (and the test suite's) setting: CPU training differs in its last bits with the threads
IMG, CELL = 64, 8  # picture size; pixels per cell of the 8x8 maps of layer2

# the maps that can be clustered: name -> cam_dl arguments
MAPS = {'cam': dict(), 'gradcam_0.5.0': dict(method='gradcam', layer='0.5.0')}

# name -> (maps, cluster_maps arguments beyond `boxes` and `img_size=64`, boxes snapped to the cells)
SETTINGS = {
    'outside=True': ('cam', dict(outside=True), False),
    'whole maps (outside=False)': ('cam', dict(), False),
    'size=16': ('cam', dict(outside=True, size=16), False),
    'size=64': ('cam', dict(outside=True, size=64), False),
    'n_neighbors=5': ('cam', dict(outside=True, n_neighbors=5), False),
    'n_neighbors=20': ('cam', dict(outside=True, n_neighbors=20), False),
    'max_clusters=5': ('cam', dict(outside=True, max_clusters=5), False),
    'max_clusters=20': ('cam', dict(outside=True, max_clusters=20), False),
    'n_clusters=2': ('cam', dict(outside=True, n_clusters=2), False),
    'gradcam layer 0.5.0': ('gradcam_0.5.0', dict(outside=True), False),
    'snapped': ('cam', dict(outside=True), True),
    'snapped, n_neighbors=5': ('cam', dict(outside=True, n_neighbors=5), True),
    'snapped, n_neighbors=20': ('cam', dict(outside=True, n_neighbors=20), True),
    'snapped, max_clusters=5': ('cam', dict(outside=True, max_clusters=5), True),
    'snapped, max_clusters=20': ('cam', dict(outside=True, max_clusters=20), True),
    'snapped, gradcam layer 0.5.0': ('gradcam_0.5.0', dict(outside=True), True),
}

def data(root: Path):
    "The notebook's pictures: clean digits, and a copy with the mark on 40% of the 7s; the marked copy's labels."
    make_digits(root/'clean', n_train=2000, n_valid=400)
    return mark_digits(root/'clean', root/'marked', '7', fraction=0.4, seed=0)

def trained(root: Path, seed: int, retrain: bool = False, pictures: str = 'marked'):
    "The notebook's learner trained on `root/pictures` after `set_seed(seed)`; the weights are cached in `root/models`."
    set_seed(seed)
    learn = cam_learner(digits_dls(root/pictures, bs=32), ps=0.1)
    path = root/'models'/f'{pictures}_seed{seed}.pth'
    if path.exists() and not retrain:
        learn.model.load_state_dict(torch.load(path))
        return learn, None
    start = time.perf_counter()
    with learn.no_logging(), learn.no_bar(): learn.fit_one_cycle(3, 1e-2)
    took = time.perf_counter() - start
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(learn.model.state_dict(), path)
    return learn, took

def maps_of(root: Path, seed: int, learn, df, name: str, retrain: bool = False, pictures: str = 'marked'):
    "The maps (of each item's own class) of every item of `learn`'s pictures, in `df`'s order; cached in `root/maps`."
    path = root/'maps'/f'{pictures}_seed{seed}_{name}.pt'
    if path.exists() and not retrain: return CAMResult(*torch.load(path))
    res = learn.cam_dl(learn.dls.test_dl(df, with_labels=True), cls='target', progress=False, **MAPS[name])
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save((res.maps, res.logits, res.targets), path)
    return res

def snap(boxes: torch.Tensor) -> torch.Tensor:
    "Boxes grown outwards to the map's cells: each cell the box touches is then wholly inside it."
    return torch.cat([(boxes[:, :2] / CELL).floor(), (boxes[:, 2:] / CELL).ceil()], 1) * CELL

def flag_median(found, e: torch.Tensor) -> list:
    "The rule before the fix: mean energy in box more than 0.1 below the median cluster's, and below 0.45."
    means = [e[found.labels == c].nanmean().item() for c in range(len(found))]
    if len(means) < 2: return []
    median = float(np.nanmedian(means))
    return [c for c, m in enumerate(means) if m < 0.45 and m < median - 0.1]

def flag_sd(found, e: torch.Tensor, gap: float = 1.) -> list:
    "The rule after it: mean energy in box more than `gap` pooled within-cluster SDs below the other items' mean."
    ok, labels, k = ~e.isnan(), found.labels, len(found)
    if k < 2: return []
    means = torch.stack([e[ok & (labels == c)].mean() for c in range(k)])
    sd = ((e - means[labels])[ok] ** 2).sum().div(max(1, int(ok.sum()) - k)).sqrt()
    return [c for c in range(k) if means[c] < e[ok & (labels != c)].mean() - gap * sd]

RULES = {'median-0.1': flag_median, '1 SD': flag_sd}

def grade(found, marked: torch.Tensor, flagged: list) -> tuple:
    "Precision and recall of the items of the clusters `flagged` for the marked ones."
    items = found.items[torch.isin(found.labels, torch.tensor(flagged, dtype=torch.long))]
    hits = int(marked[items].sum())
    return hits / max(1, len(items)), hits / int(marked.sum())

def main(seeds=(42, 1, 2), only=None, root='/tmp/spray_recall', retrain=False):
    torch.set_num_threads(THREADS)
    root = Path(root)
    df = data(root)
    boxes = torch.tensor(df[['x0', 'y0', 'x1', 'y1']].to_numpy(dtype='float32'))
    marked = torch.tensor(df.marked.to_numpy())
    valid = torch.tensor(df.is_valid.to_numpy())
    settings = {k: v for k, v in SETTINGS.items() if only is None or k in only}
    rows, start = {}, time.perf_counter()
    for seed in seeds:
        res = {}
        for pictures in ('marked', 'clean'):
            learn, took = trained(root, seed, retrain, pictures)
            if took is not None: print(f"seed {seed}, {pictures} pictures: trained in {took:.0f} s")
            seven = learn.class_index('7')
            needed = {s[0] for s in settings.values()}
            res[pictures] = {m: maps_of(root, seed, learn, df, m, retrain, pictures) for m in needed}
            r = next(iter(res[pictures].values()))
            acc = (r.logits.argmax(1) == r.targets[:, 0])[valid].float().mean().item()
            print(f"seed {seed}, {pictures} pictures: validation accuracy {acc:.3f}")
        for name, (m, kwargs, snapped) in settings.items():
            found = {p: cluster_maps(res[p][m], seven, boxes=snap(boxes) if snapped else boxes, img_size=IMG, **kwargs)
                     for p in res}
            energy = {p: energy_in_box(f.maps, boxes[f.items], IMG, reduce=False) for p, f in found.items()}
            for rule, flag in RULES.items():
                flagged = flag(found['marked'], energy['marked'])
                clean = flag(found['clean'], energy['clean'])
                p, r = grade(found['marked'], marked, flagged)
                rows.setdefault((name, rule), {})[seed] = (p, r, len(found['marked']), len(flagged), len(clean))
    print(f"\n{int(marked.sum())} marked 7s of {int((df.label == '7').sum())}; each cell: precision / recall "
          f"(clusters found, flagged) clusters flagged for the clean model; {time.perf_counter() - start:.0f} s "
          f"in all, training and maps included\n")
    head = f"| {'setting':30} | {'flag rule':10} | " + " | ".join(f"seed {s:<18}" for s in seeds) + " | min P | min R |"
    print(head); print('|' + '|'.join('-' * len(c) for c in head.split('|')[1:-1]) + '|')
    for (name, rule), per_seed in rows.items():
        cells = [f"{p:.2f} / {r:.2f} ({k}, {f}) {c}" for p, r, k, f, c in (per_seed[s] for s in seeds)]
        mp, mr = min(v[0] for v in per_seed.values()), min(v[1] for v in per_seed.values())
        print(f"| {name:30} | {rule:10} | " + " | ".join(f"{c:<23}" for c in cells) + f" | {mp:.2f}  | {mr:.2f}  |")
    return rows

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--seeds', type=int, nargs='+', default=[42, 1, 2])
    ap.add_argument('--only', nargs='+', default=None, help='names of settings to run (see SETTINGS)')
    ap.add_argument('--root', default='/tmp/spray_recall')
    ap.add_argument('--retrain', action='store_true', help='train and map again, ignoring the cache')
    a = ap.parse_args()
    main(a.seeds, a.only, a.root, a.retrain)
