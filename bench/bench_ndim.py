"""Grad-CAM of 1-D signals and 3-D video against one inference forward, measured side by side in one run (CPU), issue 22.

    python bench/bench_ndim.py [--repeats 3] [--threads 2] [--only 1d|3d]

Two rows of models, random weights:
- 1-D: InceptionTime (tsai's `InceptionTime(c_in=3, c_out=5)`, or the same architecture built here if
  `tsai.models.InceptionTime` does not import: tsai 1.0.1's state dict loads into it and gives the same logits),
  batch 64, 3 channels x 512 steps, at its
  `inceptionblock` (the feature map [bs, 128, 512] before the pooled head);
- 3-D: torchvision's `r3d_18(weights=None)` (400 classes), batch 4 clips of 3 x 16 x 112 x 112, at `layer4`.

Timed, each against one inference forward (`torch.no_grad()`): the floor of a gradient map (a forward with grad and
`torch.autograd.grad` of the top score to the layer), fastcam's Grad-CAM for the predicted class and for the top-5
classes, captum's `LayerGradCam` (given the predicted classes, untimed: it needs a target), and on 3-D
pytorch-grad-cam's `GradCAM` (predicted class, its maps stretched to the clip as a user gets them; it has no 1-D).
Medians of `--repeats` interleaved runs, so that drifts of a shared machine hit every contender alike.

Peak memory is measured in a fresh process for each operation, as bench/bench_cam.py does: the resident peak above
what the process held with the model and input loaded, and the whole process's peak. Unlike bench_cam (`ru_maxrss`,
the peak over the process's life), the peak is counted from a reset of the kernel's high-water mark made just before
the operation (`/proc/self/clear_refs`, then `VmHWM`): importing fastai and tsai peaks higher than InceptionTime's
forward, and `ru_maxrss` would give every operation the same figure. The children run with
MALLOC_MMAP_THRESHOLD_=65536 (as bench/bench_methods.py's do), so that glibc returns freed tensors to the system at
once and the resident peak follows the tensors alive at a time.

Prints the tables and the ratios against the targets of issue 22 (Grad-CAM <= 1.1x an inference forward, top-5 <=
1.15x top-1, peak memory <= 1.05x the forward's), and records them in bench/results.md (see bench/results.py)."""
import os
for var in ['OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'OPENBLAS_NUM_THREADS']: os.environ.setdefault(var, '2')
import argparse, json, statistics, subprocess, sys, time, warnings
import torch
from torch import nn
from fastcam.all import GradCAM
from results import record
from memory import rss_kib, reset_peak, peak_kib

warnings.filterwarnings('ignore')

# --- the models -------------------------------------------------------------------------------------------------
class _InceptionModule(nn.Module):
    "tsai's InceptionModule: a bottleneck, three convolutions (kernels 39, 19, 9) and a max-pool branch, concatenated."
    def __init__(self, ni: int, nf: int = 32, ks: int = 40):
        super().__init__()
        kernels = [k if k % 2 else k - 1 for k in (ks // 2 ** i for i in range(3))]  # odd: 39, 19, 9
        self.bottleneck = nn.Conv1d(ni, nf, 1, bias=False) if ni > 1 else nn.Identity()
        self.convs = nn.ModuleList([nn.Conv1d(nf if ni > 1 else ni, nf, k, padding=k // 2, bias=False)
                                    for k in kernels])
        self.maxconvpool = nn.Sequential(nn.MaxPool1d(3, stride=1, padding=1), nn.Conv1d(ni, nf, 1, bias=False))
        self.bn, self.act = nn.BatchNorm1d(nf * 4), nn.ReLU()

    def forward(self, x):
        b = self.bottleneck(x)
        return self.act(self.bn(torch.cat([conv(b) for conv in self.convs] + [self.maxconvpool(x)], 1)))

class _InceptionBlock(nn.Module):
    "tsai's InceptionBlock: 6 modules, a residual connection around each 3."
    def __init__(self, ni: int, nf: int = 32, depth: int = 6):
        super().__init__()
        self.inception = nn.ModuleList([_InceptionModule(ni if d == 0 else nf * 4, nf) for d in range(depth)])
        self.shortcut = nn.ModuleList([nn.Sequential(nn.Conv1d(ni, nf * 4, 1, bias=False), nn.BatchNorm1d(nf * 4))
                                       if d == 2 else nn.BatchNorm1d(nf * 4) for d in range(2, depth, 3)])
        self.act = nn.ReLU()

    def forward(self, x):
        res = x
        for d, module in enumerate(self.inception):
            x = module(x)
            if d % 3 == 2: res = x = self.act(x + self.shortcut[d // 3](res))
        return x

class _InceptionTime(nn.Module):
    "tsai's InceptionTime, with its children's names: `inceptionblock`, `gap`, `fc`."
    def __init__(self, c_in: int, c_out: int, nf: int = 32):
        super().__init__()
        self.inceptionblock = _InceptionBlock(c_in, nf)
        self.gap = nn.Sequential(nn.AdaptiveAvgPool1d(1), nn.Flatten())
        self.fc = nn.Linear(nf * 4, c_out)

    def forward(self, x): return self.fc(self.gap(self.inceptionblock(x)))

def inception_time() -> tuple:
    "`(model, where it comes from)`: tsai's InceptionTime(3, 5) if it imports, else the same built here."
    try:
        from tsai.models.InceptionTime import InceptionTime
        return InceptionTime(c_in=3, c_out=5), 'tsai InceptionTime(c_in=3, c_out=5)'
    except Exception:  # tsai not installed, or not importable against this fastcore
        return _InceptionTime(3, 5), 'InceptionTime(c_in=3, c_out=5) built as tsai does (tsai does not import)'

def r3d_18():
    from torchvision.models.video import r3d_18 as make
    return make(weights=None)

SETUPS = {  # rank -> (model maker, input shape, layer, label)
    '1d': (lambda: inception_time()[0], (64, 3, 512), 'inceptionblock', 'InceptionTime'),
    '3d': (r3d_18, (4, 3, 16, 112, 112), 'layer4', 'r3d_18'),
}

def load(rank: str) -> tuple:
    "The seeded model in eval mode, its input and the layer to explain."
    make, shape, layer, _ = SETUPS[rank]
    torch.manual_seed(0)
    model = make().eval()
    return model, torch.randn(*shape), layer


# --- the contenders ---------------------------------------------------------------------------------------------
def inference(model, x):
    with torch.no_grad(): return model(x)

def full_graph_gradient(model, layer, x):
    "A forward with grad through the whole model and `torch.autograd.grad` of the top score to `layer`'s output."
    kept = {}
    handle = dict(model.named_modules())[layer].register_forward_hook(lambda m, i, o: kept.update(a=o))
    try: out = model(x)
    finally: handle.remove()
    torch.autograd.grad(out.max(1).values.sum(), kept['a'])

def captum_gradcam(model, layer, x, classes):
    from captum.attr import LayerGradCam
    return LayerGradCam(model, dict(model.named_modules())[layer]).attribute(x, target=classes)

def pgc_gradcam(model, layer, x):
    "pytorch-grad-cam's Grad-CAM of the predicted class, as a user calls it (maps stretched to the clip)."
    import pytorch_grad_cam as pgc
    with pgc.GradCAM(model=model, target_layers=[dict(model.named_modules())[layer]]) as cam:
        return cam(input_tensor=x, targets=None)

def _has(module: str) -> bool:
    try:
        __import__(module)
        return True
    except ImportError: return False

def contenders(rank: str, model, x, layer) -> dict:
    "`{name: function}` for one model, in the order of the table."
    classes = inference(model, x).argmax(1).tolist()
    gradcam = GradCAM(model, layer)
    found = {
        'inference forward (no_grad)': lambda: inference(model, x),
        f'forward + autograd.grad to {layer}': lambda: full_graph_gradient(model, layer, x),
        'fastcam GradCAM, predicted class': lambda: gradcam(x),
        'fastcam GradCAM, top-5 classes': lambda: gradcam(x, topk=5),
    }
    if _has('captum'): found['captum LayerGradCam, predicted class'] = lambda: captum_gradcam(model, layer, x, classes)
    if rank == '3d' and _has('pytorch_grad_cam'):
        found['pytorch-grad-cam GradCAM, predicted class'] = lambda: pgc_gradcam(model, layer, x)
    return found


# --- peak memory, each operation in its own process -------------------------------------------------------------
MEMORY_OPS = {  # key -> label
    'forward': 'inference forward (no_grad)',
    'gradcam': 'fastcam GradCAM, predicted class',
    'gradcam5': 'fastcam GradCAM, top-5 classes',
    'full_graph': 'forward with grad + autograd.grad (full graph)',
    'captum': 'captum LayerGradCam, predicted class',
    'pgc': 'pytorch-grad-cam GradCAM, predicted class',
}

def memory_child(rank: str, kind: str):
    "Run one operation in this fresh process; print its peak memory above the baseline (model and input loaded)."
    model, x, layer = load(rank)
    classes = [0] * len(x)  # captum needs a target; no forward here, it would set the process's peak
    reset = reset_peak()  # importing fastai and tsai peaks above InceptionTime's forward: count from here on
    base = rss_kib()
    if kind == 'forward': inference(model, x)
    elif kind == 'gradcam': GradCAM(model, layer)(x)
    elif kind == 'gradcam5': GradCAM(model, layer)(x, topk=5)
    elif kind == 'full_graph': full_graph_gradient(model, layer, x)
    elif kind == 'captum': captum_gradcam(model, layer, x, classes)
    elif kind == 'pgc': pgc_gradcam(model, layer, x)
    peak = peak_kib(reset)
    print(json.dumps({'extra_mib': (peak - base) / 1024, 'peak_mib': peak / 1024, 'reset': reset}))

def measure_memory(rank: str, kind: str, threads: int) -> dict:
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_='65536')
    out = subprocess.run([sys.executable, __file__, '--memory-child', kind, '--only', rank, '--threads', str(threads)],
                         capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- one model's rows -------------------------------------------------------------------------------------------
def bench(rank: str, repeats: int, threads: int, command: str):
    model, x, layer = load(rank)
    label = SETUPS[rank][3]
    source = inception_time()[1] if rank == '1d' else 'torchvision r3d_18(weights=None), 400 classes'
    setup = (f"{source}, random weights, batch {x.shape[0]} x {list(x.shape[1:])}, layer `{layer}`, CPU, median of "
             f"{repeats} interleaved runs; `{command}`")
    print(f"\n## {label}: {setup}\n", flush=True)
    runs = contenders(rank, model, x, layer)
    for f in runs.values(): f()  # warm up
    times = {k: [] for k in runs}
    for _ in range(repeats):  # interleaved, so drifts of a shared machine hit every contender alike
        for k, f in runs.items():
            start = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - start)
    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    fwd = med['inference forward (no_grad)']
    print("| contender | ms / batch | / inference forward |\n|---|---|---|")
    for k, v in med.items(): print(f"| {k} | {v:.0f} | {v / fwd:.2f} |", flush=True)

    kinds = [k for k in MEMORY_OPS if (k != 'captum' or _has('captum')) and
             (k != 'pgc' or (rank == '3d' and _has('pytorch_grad_cam')))]
    mem = {k: measure_memory(rank, k, threads) for k in kinds}
    print(f"\nPeak memory above the loaded model and input ({label}, same batch), each in its own process:\n")
    print("| operation | extra MiB | process peak MiB | extra / forward's |\n|---|---|---|---|")
    base = mem['forward']['extra_mib']
    for k, v in mem.items():
        print(f"| {MEMORY_OPS[k]} | {v['extra_mib']:.0f} | {v['peak_mib']:.0f} | {v['extra_mib'] / base:.2f} |")

    one, five = med['fastcam GradCAM, predicted class'], med['fastcam GradCAM, top-5 classes']
    ratios = [
        ('GradCAM / inference forward', one / fwd, 1.1),
        ('GradCAM: top-5 / top-1', five / one, 1.15),
        ('peak memory above baseline: GradCAM / inference forward', mem['gradcam']['extra_mib'] / base, 1.05),
        ('process peak memory: GradCAM / inference forward',
         mem['gradcam']['peak_mib'] / mem['forward']['peak_mib'], 1.05),
    ]
    print("\n| ratio | measured | target | met |\n|---|---|---|---|")
    for name, r, target in ratios: print(f"| {name} | {r:.2f} | <= {target} | {'yes' if r <= target else 'NO'} |")
    peers = [(k, v / one) for k, v in med.items() if k.startswith(('captum', 'pytorch-grad-cam'))]
    for k, r in peers: print(f"| {k} / fastcam GradCAM | {r:.2f} | | |")

    title = f"bench_ndim {rank.upper()} ({label})"
    record(f"{title}: time against one inference forward", ['contender', 'ms / batch', '/ inference forward'],
           [[k, round(v), round(v / fwd, 2)] for k, v in med.items()], notes=setup, threads=threads)
    record(f"{title}: peak memory", ['operation', 'extra MiB', 'process peak MiB', "extra / forward's"],
           [[MEMORY_OPS[k], round(v['extra_mib']), round(v['peak_mib']), round(v['extra_mib'] / base, 2)]
            for k, v in mem.items()],
           notes=f"{label}, batch {x.shape[0]}, each operation in its own process (MALLOC_MMAP_THRESHOLD_=65536); "
                 f"extra: the resident peak above the loaded model and input", threads=threads)
    rows = [[name, round(r, 2), f"<= {target}", 'yes' if r <= target else 'NO'] for name, r, target in ratios]
    rows += [[f"{k} / fastcam GradCAM (speed-up)", round(r, 2), '', ''] for k, r in peers]
    return record(f"{title}: ratios and targets", ['ratio', 'measured', 'target', 'met'], rows, notes=setup,
                  threads=threads)

def main():
    p = argparse.ArgumentParser()
    p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--only', choices=list(SETUPS), default=None, help='one model only (default: both)')
    p.add_argument('--memory-child', default=None)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    if a.memory_child: return memory_child(a.only, a.memory_child)
    print(f"fastcam bench_ndim: CPU, {a.threads} threads, torch {torch.__version__}")
    command = f"python bench/bench_ndim.py --repeats {a.repeats}" + (f" --only {a.only}" if a.only else '')
    for rank in ([a.only] if a.only else list(SETUPS)): path = bench(rank, a.repeats, a.threads, command)
    print('\nrecorded in', path)

if __name__ == '__main__': main()
