"""The shelf's table: every registered method on the demo's trained model, scored for faithfulness, localization and
cost in one run, with a plot of faithfulness against cost (issue 24).

    python bench/bench_shelf.py                 # 48 validation items, into bench/results.md and nbs/images/
    python bench/bench_shelf.py --items 16      # a short run
    python bench/bench_shelf.py --no-record     # print only
    python bench/bench_shelf.py --items 24 --percentiles 20 40 60 80   # the run in bench/results.md (2 CPU cores)

The model is the one `fastcam demo` trains (`run_demo`: resnet18 cut after layer2, 3000 digits pictures of 64 px, 4
epochs, seed 42; its weights are cached in `~/.cache/fastcam/demo`, or `--path`). Every method `all_methods` gives for
it is scored by `learn.cam_report` on the first `--items` validation items, explaining the predicted class:
deletion and insertion AUC (16 steps, blur baseline), ROAD (noisy linear imputation, most and least relevant first,
percentiles 10 to 90 or `--percentiles`; 'ROAD' is half their difference, higher is better), the pointing game and
energy in box (the digit's ink box). Cost is the seconds of one call of the method on a batch of `--batch` items, over
the seconds of one inference forward of the same batch (`torch.no_grad`), medians of `--repeats` interleaved repeats
after a warm-up. The plot puts each method at (cost, insertion - deletion AUC) and (cost, ROAD).

A ViT row set is not measured: no pretrained weights can be fetched here, a ViT with random weights says nothing about
localization, and training one from scratch on the digits to a useful accuracy is not quick on a CPU."""
import os
for var in ['OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'OPENBLAS_NUM_THREADS']: os.environ.setdefault(var, '2')
import argparse, statistics, tempfile, time
from pathlib import Path
import torch

ROOT = Path(__file__).resolve().parent.parent
PLOT = ROOT/'nbs'/'images'/'shelf_cost_faithfulness.png'
COLUMNS = ['deletion_auc', 'insertion_auc', 'road_most', 'road_least', 'pointing_game', 'energy_in_box']

def demo_learner(path: Path):
    "The demo's trained learner, trained as `fastcam demo` trains it (or loaded from its cache in `path`)."
    from fastcam.cli import run_demo
    from fastcam.data import digits_dls
    from fastcam.learner import cam_learner
    with tempfile.TemporaryDirectory() as tmp:
        run_demo(path, out=Path(tmp)/'demo.png', report_items=0, n_show=1, log=lambda s: print(s, flush=True))
    learn = cam_learner(digits_dls(path/'data', bs=64), ps=0.1)
    learn.model.load_state_dict(torch.load(path/'demo_model.pth', map_location='cpu'))
    learn.to(torch.device('cuda' if torch.cuda.is_available() else 'cpu'))
    return learn

def seconds(f, device) -> float:
    "Seconds `f()` takes, waiting for the GPU."
    sync = torch.cuda.synchronize if device.type == 'cuda' else (lambda: None)
    sync()
    start = time.perf_counter()
    f()
    sync()
    return time.perf_counter() - start

def cost_ratios(learn, names: list, batch: int, repeats: int) -> dict:
    "`{method: seconds of one call on the batch / seconds of one inference forward}`, medians of interleaved repeats."
    from fastcam.all import cam_method
    x = learn.cam_batch(list(range(batch)))
    plain = x.as_subclass(torch.Tensor)  # the floor without fastai's tensor subclass, as the methods run the model
    objects = {name: cam_method(learn.model, name) for name in names}
    def forward():
        with torch.no_grad(): learn.model(plain)
    times = {name: [] for name in ['forward', *names]}
    for repeat in range(repeats + 1):  # the first round warms up and is not counted
        for name in times:
            took = seconds(forward if name == 'forward' else (lambda: objects[name].compute(x)), x.device)
            if repeat: times[name].append(took)
    floor = statistics.median(times['forward'])
    return {name: statistics.median(times[name]) / floor for name in names}

def pareto(table) -> list:
    "The methods no other method beats on both cost (lower) and faithfulness (higher), cheapest first."
    ordered = table.sort_values(['cost', 'faithfulness'], ascending=[True, False])
    front, best = [], -float('inf')
    for name, row in ordered.iterrows():
        if row['faithfulness'] > best: front.append(name); best = row['faithfulness']
    return front

def plot(table, path: Path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, column, label in [(axes[0], 'faithfulness', 'insertion AUC - deletion AUC (higher is better)'),
                              (axes[1], 'road', 'ROAD: (least - most relevant first) / 2 (higher is better)')]:
        ax.scatter(table['cost'], table[column], s=18)
        for name, row in table.iterrows():
            ax.annotate(name, (row['cost'], row[column]), fontsize=7, xytext=(3, 2), textcoords='offset points')
        ax.set_xscale('log')
        ax.set_xlabel('cost: one call / one inference forward (log)')
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    fig.suptitle(f"Every method on the demo model: faithfulness against cost ({table.attrs['items']} items)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)

def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--items', type=int, default=48)
    parser.add_argument('--batch', type=int, default=16)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--percentiles', type=int, nargs='+', default=[10, 20, 30, 40, 50, 60, 70, 80, 90],
                        help="ROAD's percentiles (pytorch-grad-cam's default: 10 to 90)")
    parser.add_argument('--path', type=Path, default=None, help="the demo's folder; ~/.cache/fastcam/demo if None")
    parser.add_argument('--every', action='store_true',
                        help="also the methods all_methods leaves out as costly (in_all=False: SS-CAM, IS-CAM, ...)")
    parser.add_argument('--no-record', action='store_true')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from fastcam.cli import DEMO_PATH
    from fastcam.all import METHODS, all_methods, digits_boxes
    learn = demo_learner(args.path or DEMO_PATH)
    names = [m.__name__ for m in all_methods(learn.model)]
    costly = [m.__name__ for m in dict.fromkeys(METHODS.values()) if not getattr(m, 'in_all', True)]
    if args.every: names += costly
    left_out = '' if args.every or not costly else f" Left out as costly (`--every` adds them): {', '.join(costly)}."
    print(f"{len(names)} methods: {', '.join(names)}.{left_out}", flush=True)
    start = time.perf_counter()
    report = learn.cam_report(names, boxes=digits_boxes(learn.dls), n_items=args.items, metrics=COLUMNS, steps=16,
                              percentiles=tuple(args.percentiles), progress=False)
    scored = time.perf_counter() - start
    costs = cost_ratios(learn, names, args.batch, args.repeats)
    table = report[COLUMNS].copy()
    table['road'] = (table['road_least'] - table['road_most']) / 2
    table['faithfulness'] = table['insertion_auc'] - table['deletion_auc']
    table['cost'] = [costs[name] for name in table.index]
    table.attrs['items'] = args.items
    table = table.sort_values('cost')
    front = pareto(table)
    cheap = table[table['cost'] <= 3]
    answer = cheap['faithfulness'].idxmax() if len(cheap) else front[0]
    best = table['faithfulness'].idxmax()
    top = cheap['faithfulness'].max() if len(cheap) else table.loc[answer, 'faithfulness']
    close = [n for n in cheap.index if n != answer and cheap.loc[n, 'faithfulness'] >= top - 0.01]
    baseline = (f"; RandomCAM scores {table.loc['RandomCAM', 'faithfulness']:.3f}" if 'RandomCAM' in table.index
                else '')
    line = (f"On this task, {answer} is the most faithful for its cost (insertion - deletion "
            f"{table.loc[answer, 'faithfulness']:.3f} at {table.loc[answer, 'cost']:.2f}x a forward)"
            + (f", with {', '.join(close)} within 0.01 of it at under 3x" if close else '')
            + f"; the most faithful overall is {best} ({table.loc[best, 'faithfulness']:.3f} at "
            f"{table.loc[best, 'cost']:.1f}x){baseline}.")
    print(table.round(3).to_string())
    print(f"\nPareto front (cost, insertion - deletion): {', '.join(front)}")
    print(line)
    print(f"scoring took {scored:.0f} s")
    if args.no_record: return
    plot(table, PLOT)
    from results import record
    header = ['method', 'deletion AUC ↓', 'insertion AUC ↑', 'ROAD most ↓', 'ROAD least ↑', 'ROAD ↑',
              'pointing game ↑', 'energy in box ↑', 'cost (x forward) ↓']
    values = ['deletion_auc', 'insertion_auc', 'road_most', 'road_least', 'road', 'pointing_game', 'energy_in_box',
              'cost']
    rows = [[name, *(float(row[c]) for c in values)] for name, row in table.iterrows()]
    record('bench_shelf: every method, faithfulness, localization and cost', header, rows, threads=args.threads,
           notes=f"The demo model (`fastcam demo`: resnet18 cut after layer2, 64 px digits, 4 epochs, seed 42), the "
                 f"first {args.items} validation items, the predicted class. Faithfulness and localization from "
                 f"`learn.cam_report` (deletion and insertion: 16 steps, blur; ROAD: noisy linear imputation, "
                 f"percentiles {', '.join(map(str, args.percentiles))}; ROAD = (least - most) / 2). Cost: one call of "
                 f"the method on a batch of {args.batch} over one inference forward of that batch, medians of "
                 f"{args.repeats} interleaved repeats. Pareto front (cost, insertion - deletion): {', '.join(front)}. "
                 f"{line}{left_out} Plot: `nbs/images/{PLOT.name}`. Command: `python bench/bench_shelf.py "
                 f"--items {args.items} --percentiles {' '.join(map(str, args.percentiles))}`.")
    print(f"written: bench/results.md, {PLOT.relative_to(ROOT)}")

if __name__ == '__main__': main()
