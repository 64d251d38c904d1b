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

`--model vit` (or `both`) scores a small ViT instead (or as well): a hybrid ViT (Dosovitskiy et al.'s ViT-Hybrid),
timm's `VisionTransformer` at 64 px with patches of 8 (an 8x8 grid, as the demo model's map) whose patch embedding is
the demo model's trained body and a 1x1 projection, with 3 blocks of width 64 and 2 heads trained on the body's
features (`--vit-epochs`, AdamW one-cycle at 1e-3, seed 42; a tiny ViT trained from scratch stayed at chance on these
digits for as long as the CPU could train it). Weights cached beside the demo's. Every method `all_methods` gives for
it that maps two items without error: the Grad-CAM family at the last block's first norm (`default_layer`), attention
rollout and LeGrad (which read every block). Its table is its own section of `bench/results.md`.

    python bench/bench_shelf.py --model vit --items 24 --percentiles 20 40 60 80 --repeats 5
"""
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

VIT = dict(depth=3, embed_dim=64, num_heads=2)  # the transformer on top of the demo's body

def vit_learner(demo, path: Path, epochs: int, lr: float = 1e-3):
    """A hybrid ViT (Dosovitskiy et al.'s ViT-Hybrid): timm's `VisionTransformer` at 64 px with patches of 8, whose patch
    embedding is the demo's trained resnet18 body (stride 8: an 8x8 grid of 128 channels) and a 1x1 projection; its
    3 blocks, projection and head are trained on the body's features of the training set (the body frozen: a tiny ViT
    from scratch stays at chance on these digits for as long as a CPU can train it). Cached in `path`."""
    import copy
    import timm
    import torch.nn.functional as F
    from fastai.learner import Learner
    from fastai.losses import CrossEntropyLossFlat
    from fastai.metrics import accuracy
    torch.manual_seed(42)
    body = copy.deepcopy(demo.model[0]).eval().requires_grad_(False)
    model = timm.create_model('vit_tiny_patch16_224', pretrained=False, img_size=64, patch_size=8,
                              num_classes=demo.dls.c, **VIT)
    channels = body(demo.cam_batch([0]).as_subclass(torch.Tensor)).shape[1]
    project = torch.nn.Conv2d(channels, VIT['embed_dim'], 1)
    model.patch_embed.proj = torch.nn.Sequential(body, project)  # [bs, 3, 64, 64] -> [bs, dim, 8, 8]
    weights = path/f"vit_hybrid_{'_'.join(str(v) for v in VIT.values())}_{epochs}_{lr}.pth"
    if weights.exists(): model.load_state_dict(torch.load(weights, map_location='cpu'))
    else:
        print(f"training the ViT's blocks on the body's features, {epochs} epochs...", flush=True)
        start = time.perf_counter()
        with torch.no_grad():  # the body's features of the training set, once
            batches = [(body(xb.as_subclass(torch.Tensor)), yb.as_subclass(torch.Tensor))
                       for xb, yb in demo.dls.train.new(shuffle=False, drop_last=False)]
        features, labels = torch.cat([f for f, _ in batches]), torch.cat([y for _, y in batches])
        model.patch_embed.proj, model.patch_embed.strict_img_size = project, False  # features in, for training
        trained = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(trained, lr=lr, weight_decay=0.05)
        steps = epochs * -(-len(features) // 64)
        schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
        generator = torch.Generator().manual_seed(42)
        model.train()
        for epoch in range(epochs):
            for idx in torch.randperm(len(features), generator=generator).split(64):
                loss = F.cross_entropy(model(features[idx]), labels[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                schedule.step()
        model.patch_embed.proj, model.patch_embed.strict_img_size = torch.nn.Sequential(body, project), True
        model.eval()
        print(f"trained in {time.perf_counter() - start:.0f} s", flush=True)
        torch.save(model.state_dict(), weights)
    learn = Learner(demo.dls, model, loss_func=CrossEntropyLossFlat(), metrics=accuracy)
    learn.to(torch.device('cuda' if torch.cuda.is_available() else 'cpu'))
    with learn.no_bar(), learn.no_logging(): learn.accuracy = float(learn.validate()[1])
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

def computes(learn, name: str, failures: dict) -> bool:
    "Whether method `name` maps two validation items; else its error goes into `failures` (e.g. CAM on a ViT)."
    from fastcam.all import cam_method
    try: cam_method(learn.model, name).compute(learn.cam_batch([0, 1]))
    except (ValueError, RuntimeError) as e:  # CAM on a timm ViT fails in fold_head with a RuntimeError
        failures[name] = f"{type(e).__name__}: {str(e).splitlines()[0][:120]}"
        print(f"{name} left out: {failures[name]}", flush=True)
        return False
    return True

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
    parser.add_argument('--model', choices=['demo', 'vit', 'both'], default='demo',
                        help="the demo's resnet18, a small ViT trained on the same digits, or both")
    parser.add_argument('--vit-epochs', type=int, default=4)
    parser.add_argument('--every', action='store_true',
                        help="also the methods all_methods leaves out as costly (in_all=False: SS-CAM, IS-CAM, ...)")
    parser.add_argument('--no-record', action='store_true')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from fastcam.cli import DEMO_PATH
    path = args.path or DEMO_PATH
    demo = demo_learner(path)  # makes the digits and the demo model, which the ViT's data are
    if args.model in ('demo', 'both'): shelf(demo, args, vit=False)
    if args.model in ('vit', 'both'): shelf(vit_learner(demo, path, args.vit_epochs), args, vit=True)

def shelf(learn, args, vit: bool):
    "Score every method that applies to `learn`'s model, print the table and (unless --no-record) record it."
    from fastcam.all import METHODS, all_methods, digits_boxes
    names = [m.__name__ for m in all_methods(learn.model)]
    costly = [m.__name__ for m in dict.fromkeys(METHODS.values()) if not getattr(m, 'in_all', True)]
    if args.every: names += costly
    failures = {}
    names = [name for name in names if computes(learn, name, failures)]
    failed = (f" Left out because they fail on this model: "
              f"{'; '.join(f'{n} ({e})' for n, e in failures.items())}." if failures else '')
    left_out = '' if args.every or not costly else f" Left out as costly (`--every` adds them): {', '.join(costly)}."
    if vit: print(f"the ViT: validation accuracy {learn.accuracy:.3f}", flush=True)
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
    line = (f"On this {'ViT' if vit else 'task'}, {answer} is the most faithful for its cost (insertion - deletion "
            f"{table.loc[answer, 'faithfulness']:.3f} at {table.loc[answer, 'cost']:.2f}x a forward)"
            + (f", with {', '.join(close)} within 0.01 of it at under 3x" if close else '')
            + f"; the most faithful overall is {best} ({table.loc[best, 'faithfulness']:.3f} at "
            f"{table.loc[best, 'cost']:.1f}x){baseline}.")
    print(table.round(3).to_string())
    print(f"\nPareto front (cost, insertion - deletion): {', '.join(front)}")
    print(line)
    print(f"scoring took {scored:.0f} s")
    if args.no_record: return
    if not vit: plot(table, PLOT)
    from results import record
    header = ['method', 'deletion AUC ↓', 'insertion AUC ↑', 'ROAD most ↓', 'ROAD least ↑', 'ROAD ↑',
              'pointing game ↑', 'energy in box ↑', 'cost (x forward) ↓']
    values = ['deletion_auc', 'insertion_auc', 'road_most', 'road_least', 'road', 'pointing_game', 'energy_in_box',
              'cost']
    rows = [[name, *(float(row[c]) for c in values)] for name, row in table.iterrows()]
    scoring = (f"the first {args.items} validation items, the predicted class. Faithfulness and localization from "
               f"`learn.cam_report` (deletion and insertion: 16 steps, blur; ROAD: noisy linear imputation, "
               f"percentiles {', '.join(map(str, args.percentiles))}; ROAD = (least - most) / 2). Cost: one call of "
               f"the method on a batch of {args.batch} over one inference forward of that batch, medians of "
               f"{args.repeats} interleaved repeats. Pareto front (cost, insertion - deletion): {', '.join(front)}. "
               f"{line}{left_out}{failed}")
    command = (f"`python bench/bench_shelf.py{' --model vit' if vit else ''} --items {args.items} --percentiles "
               f"{' '.join(map(str, args.percentiles))}{f' --repeats {args.repeats}' if vit else ''}`")
    if vit:
        record('bench_shelf: a small ViT, every method that applies', header, rows, threads=args.threads,
               notes=f"A hybrid ViT: timm's `VisionTransformer` at 64 px, patches of 8 (an 8x8 grid), whose patch "
                     f"embedding is the demo model's trained resnet18 body (frozen) and a 1x1 projection; 3 blocks of "
                     f"width 64, 2 heads, trained with the projection and head on the body's features "
                     f"({args.vit_epochs} epochs, AdamW one-cycle at 1e-3, seed 42; validation accuracy "
                     f"{learn.accuracy:.3f}). The Grad-CAM family at the last block's first norm, attention rollout "
                     f"and LeGrad over every block; {scoring} Command: {command}.")
    else:
        record('bench_shelf: every method, faithfulness, localization and cost', header, rows, threads=args.threads,
               notes=f"The demo model (`fastcam demo`: resnet18 cut after layer2, 64 px digits, 4 epochs, seed 42), "
                     f"{scoring} Plot: `nbs/images/{PLOT.name}`. Command: {command}.")
    print(f"written: bench/results.md{'' if vit else ', ' + str(PLOT.relative_to(ROOT))}")

if __name__ == '__main__': main()
