"""SpRAy on CAM maps (`fastcam.cluster`): the time to cluster the maps of a dataset against the time to compute them.

    python bench/bench_cluster.py [--items 2000] [--repeats 3] [--threads 2] [--epochs 0]

The digits task (`make_digits`, 64 px) through `cam_learner` (resnet18 cut after layer2, 8x8 maps), batch 64:
`learn.cam_dl` over `--items` training pictures (the map of each item's label), then `cluster_maps` on those maps, once
as one set of `--items` maps (the sparse eigensolver) and once class by class (about `--items`/10 maps each, the dense
one), each with boxes and the flag. Median of `--repeats` interleaved runs. The model has random weights unless
`--epochs` trains it first (the clustering's cost hardly depends on what the maps show). Issue 16's target: the
clustering well under the time of computing the maps. The table goes to bench/results.md (bench/results.py)."""
import argparse, statistics, tempfile, time
from pathlib import Path
import torch

def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--items', type=int, default=2000)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--epochs', type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from fastai.torch_core import set_seed
    from fastcam.data import make_digits, digits_dls
    from fastcam.learner import cam_learner
    from fastcam.cluster import cluster_maps
    import fastcam.learner  # noqa: F401  (adds learn.cam_dl)
    with tempfile.TemporaryDirectory() as tmp:
        df = make_digits(Path(tmp)/'digits', n_train=args.items, n_valid=64)
        set_seed(42)
        dls = digits_dls(Path(tmp)/'digits', bs=64)
        learn = cam_learner(dls, ps=0.1)
        if args.epochs:
            with learn.no_bar(): learn.fit_one_cycle(args.epochs, 1e-2)
        dl = dls.test_dl(df[~df.is_valid], with_labels=True, bs=64)
        boxes = torch.tensor(df[~df.is_valid][['x0', 'y0', 'x1', 'y1']].to_numpy(dtype='float32'))
        times = {'maps': [], 'all': [], 'classes': []}
        for _ in range(args.repeats):
            start = time.perf_counter()
            res = learn.cam_dl(dl, cls='target', progress=False)
            times['maps'].append(time.perf_counter() - start)
            start = time.perf_counter()
            whole = cluster_maps(res, boxes=boxes, img_size=64)
            times['all'].append(time.perf_counter() - start)
            start = time.perf_counter()
            per_class = [cluster_maps(res, c, boxes=boxes, img_size=64) for c in res.targets.unique().tolist()]
            times['classes'].append(time.perf_counter() - start)
    med = {k: statistics.median(v) for k, v in times.items()}
    n = len(res.maps)
    rows = [[f'maps of {n} items (learn.cam_dl, 8x8)', med['maps'], 1.0],
            [f'cluster_maps: all {n} maps as one set ({len(whole)} clusters)', med['all'], med['all'] / med['maps']],
            [f'cluster_maps: class by class ({len(per_class)} classes)', med['classes'], med['classes'] / med['maps']]]
    for name, t, ratio in rows: print(f"{name:<55} {t:7.2f} s  {ratio:5.3f} x the maps")
    from results import record
    record('bench_cluster: SpRAy clustering against the pass of maps',
           ['step', 's', '/ computing the maps'], rows, threads=args.threads,
           notes=f"The digits task, resnet18 cut after layer2 ({'random weights' if not args.epochs else f'{args.epochs} epochs'}), "
                 f"batch 64, {n} training pictures; cluster_maps with boxes (energy in box, flag), default settings "
                 f"(10 neighbours, eigengap over at most 10 clusters, k-means with 10 starts). Median of {args.repeats} "
                 f"interleaved runs. Command: `python bench/bench_cluster.py`.")

if __name__ == '__main__': main()
