"""Time fastcam's method family against its floors and against pytorch-grad-cam, in one run, on the CPU.

    python bench/bench_methods.py            # the full run (about 10 minutes on 2 cores)
    python bench/bench_methods.py --quick    # a short run (resnet18 only, small Score-CAM, one repeat)
    python bench/bench_methods.py --vit      # the ViT row only (timm vit_small, batch 8, 224 px), into bench/results.md
    python bench/bench_methods.py --shelf    # the shelf's methods (issue 24) against their peers, 1 class
    python bench/bench_methods.py --shelf --methods KPCA-CAM   # some rows of it only
    python bench/bench_methods.py --scorecam # the Score-CAM row only, in interleaved repeats (about 10 minutes)
    python bench/bench_methods.py --family   # every registered method against one forward and its peer, 1 class
    python bench/bench_methods.py --family --before /tmp/old/fastcam   # and another copy of fastcam, side by side

Gradient methods (Grad-CAM, Grad-CAM++, XGrad-CAM, HiResCAM, LayerCAM) and Eigen-CAM run on random-weight resnet18 and
resnet50, batch 8, 224 px, at layer4. Their floor is one forward with gradients plus `torch.autograd.grad` to layer4
(gradient methods) or one forward under `no_grad` (Eigen-CAM). pytorch-grad-cam takes one target per image, so its
5-class time is 5 calls. Medians of 5 interleaved repeats for fastcam and the floors, of the first 3 for
pytorch-grad-cam's 1-class calls; its 5-class time is one run (5 independent 1-class calls). Score-CAM runs on
resnet18, 2 images, 112 px (1,024 masked inputs at layer4), in batches of 64 for everyone; its floor is the 1,024
masked forwards and nothing else. Peak memory is measured in a fresh process for each
contender (resnet50, batch 16, 224 px, layer4): the peak resident memory above what the process held just before.
The children run with MALLOC_MMAP_THRESHOLD_=65536, so that glibc returns freed tensors to the system at once and the
resident peak follows the tensors alive at a time; with glibc's adaptive threshold the same run varies by +-25%.
"""
import os
for var in ['OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'OPENBLAS_NUM_THREADS']: os.environ.setdefault(var, '2')
import argparse, contextlib, io, platform, statistics, subprocess, sys, time
import torch
from torchvision import models
from fastcam.methods import GradCAM
from fastcam.methods import GradCAMPlusPlus, XGradCAM, HiResCAM, LayerCAM, EigenCAM, ScoreCAM
from fastcam.methods import EigenGradCAM, FEM, FinerCAM, GradCAMElementWise, ISCAM, KPCACAM, SegEigenCAM, ShapleyCAM
from fastcam.methods import SSCAM

torch.set_num_threads(2)
try:
    import pytorch_grad_cam as pgc
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    import cv2
    cv2.setNumThreads(2)
except ImportError:
    pgc = None

FAMILY = [('Grad-CAM', GradCAM, 'GradCAM'), ('Grad-CAM++', GradCAMPlusPlus, 'GradCAMPlusPlus'),
          ('XGrad-CAM', XGradCAM, 'XGradCAM'), ('HiResCAM', HiResCAM, 'HiResCAM'), ('LayerCAM', LayerCAM, 'LayerCAM'),
          ('Eigen-CAM', EigenCAM, 'EigenCAM')]

def timed(f):
    "Seconds that `f()` takes."
    start = time.perf_counter()
    f()
    return time.perf_counter() - start

def inference(model, x):
    with torch.no_grad(): model(x)

def grad_floor(model, layer, x):
    "One forward with gradients and `torch.autograd.grad` of the predicted class's score to the layer's output."
    kept = {}
    handle = layer.register_forward_hook(lambda m, i, o: kept.update(a=o))
    try: logits = model(x)
    finally: handle.remove()
    torch.autograd.grad(logits.gather(1, logits.argmax(1, keepdim=True)).sum(), kept['a'])

def peer_call(model, layer, peer_name, x, classes, batch_size=None):
    "pytorch-grad-cam's maps for each column of `classes` (`[bs, k]`, or None for the predicted class), a call each."
    cam = getattr(pgc, peer_name)(model=model, target_layers=[layer])
    if batch_size: cam.batch_size = batch_size
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # Score-CAM's tqdm bars
            for j in range(1 if classes is None else classes.shape[1]):
                chosen = None if classes is None else [ClassifierOutputTarget(int(c)) for c in classes[:, j]]
                cam(input_tensor=x, targets=chosen)
    finally:
        getattr(cam, 'base_cam', cam).activations_and_grads.release()  # FinerCAM wraps a Grad-CAM
        model.zero_grad(set_to_none=True)

def median(xs): return statistics.median(xs) if xs else float('nan')

def bench_family(arch, bs, size, repeats):
    "Rows of the family's table for `arch`: each contender timed in interleaved repeats."
    model = getattr(models, arch)().eval()
    layer = model.layer4
    torch.manual_seed(0)
    x = torch.randn(bs, 3, size, size)
    with torch.no_grad(): top5 = model(x).topk(5).indices
    inference(model, x)
    if pgc is not None: peer_call(model, layer, 'GradCAM', x, None)  # warm-up, untimed
    methods = {name: cls(model, 'layer4') for name, cls, _ in FAMILY}
    for m in methods.values(): m(x[:1])  # warm-up, untimed
    times = {}
    def add(key, f): times.setdefault(key, []).append(timed(f))
    for r in range(repeats):
        add('inference', lambda: inference(model, x))
        add('grad floor', lambda: grad_floor(model, layer, x))
        for name, _, peer_name in FAMILY:
            method = methods[name]
            add((name, 1), lambda: method(x))
            add((name, 5), lambda: method(x, topk=5))
            if pgc is not None and r < PEER_REPEATS:
                add((name, 'pgc', 1), lambda: peer_call(model, layer, peer_name, x, None))
                if r == min(PEER_REPEATS, repeats) // 2:
                    add((name, 'pgc', 5), lambda: peer_call(model, layer, peer_name, x, top5))
    t = {k: median(v) for k, v in times.items()}
    rows = []
    for name, cls, _ in FAMILY:
        floor = t['grad floor'] if cls.needs_grad else t['inference']
        rows.append(dict(model=arch, method=name, floor_name='fwd+grad' if cls.needs_grad else 'no-grad fwd',
                         floor=floor, inference=t['inference'], one=t[(name, 1)], five=t[(name, 5)],
                         pgc_one=t.get((name, 'pgc', 1), float('nan')), pgc_five=t.get((name, 'pgc', 5), float('nan'))))
    print(f"  {arch}: inference {t['inference']*1e3:.0f} ms, fwd+grad floor {t['grad floor']*1e3:.0f} ms", flush=True)
    return rows

def scorecam_setup(arch, bs, size, batch_size):
    """`(model, x, top5, n, floor)` for a Score-CAM row: the model, its batch, the top-5 classes, the number of masked
    inputs at layer4 and `floor(layout)`, which runs the masked forwards alone (the masks made before timing)."""
    model = getattr(models, arch)().eval()
    torch.manual_seed(0)
    x = torch.randn(bs, 3, size, size)
    with torch.no_grad():
        A = model.layer4(model.layer3(model.layer2(model.layer1(model.maxpool(model.relu(model.bn1(model.conv1(x))))))))
        top5 = model(x).topk(5).indices
    n = bs * A.shape[1]
    masked = x.repeat_interleave(A.shape[1], 0) * torch.rand(n, 1, size, size)  # [bs*C, 3, H, W], made before timing
    def floor(layout=torch.contiguous_format):
        with torch.no_grad():
            for start in range(0, n, batch_size):
                model(masked[start:start + batch_size].contiguous(memory_format=layout))
    return model, x, top5, n, floor

def bench_scorecam(arch, bs, size, batch_size):
    "One row for Score-CAM: floor (the masked forwards alone), fastcam and pytorch-grad-cam for 1 and 5 classes."
    model, x, top5, n, floor = scorecam_setup(arch, bs, size, batch_size)
    method = ScoreCAM(model, 'layer4', batch_size=batch_size)
    t = dict(floor=timed(floor), one=timed(lambda: method(x)), five=timed(lambda: method(x, topk=5)))
    floor_cl = timed(lambda: floor(torch.channels_last))
    SCORECAM_NOTES.append(f"Score-CAM's floor with the masked inputs in channels-last format (fastcam's layout on the "
                          f"CPU): {floor_cl:.1f} s; fastcam 1 class / this floor: {t['one'] / floor_cl:.2f}")
    print(f"  Score-CAM {arch}: floor {t['floor']:.1f} s, fastcam {t['one']:.1f} s / {t['five']:.1f} s", flush=True)
    if pgc is not None:
        t['pgc_one'] = timed(lambda: peer_call(model, model.layer4, 'ScoreCAM', x, None, batch_size))
        print(f"  pytorch-grad-cam Score-CAM 1 class {t['pgc_one']:.1f} s", flush=True)
        t['pgc_five'] = timed(lambda: peer_call(model, model.layer4, 'ScoreCAM', x, top5, batch_size))
        default = timed(lambda: peer_call(model, model.layer4, 'ScoreCAM', x, None))
        SCORECAM_NOTES.append(f"pytorch-grad-cam's Score-CAM at its default batch size (16), 1 class: {default:.1f} s, "
                              f"{default / t['one']:.2f}x fastcam's time at batch size {batch_size}")
    row = dict(model=f"{arch} ({bs}x{size}px, {n} masks)", method='Score-CAM', floor_name='masked fwds',
               inference=float('nan'), pgc_one=float('nan'), pgc_five=float('nan'))
    return {**row, **t}

def peak_child(contender, arch, bs, size):
    "In this (fresh) process: the peak resident memory, in bytes, that `contender` adds."
    model = getattr(models, arch)().eval()
    x = torch.randn(bs, 3, size, size)
    runs = {'inference': lambda: inference(model, x),
            'fwd+grad floor': lambda: grad_floor(model, model.layer4, x),
            'fastcam Grad-CAM 1 class': lambda: GradCAM(model, 'layer4')(x),
            'fastcam Grad-CAM top-5': lambda: GradCAM(model, 'layer4')(x, topk=5),
            'fastcam LayerCAM top-5': lambda: LayerCAM(model, 'layer4')(x, topk=5),
            'fastcam Grad-CAM++ top-5': lambda: GradCAMPlusPlus(model, 'layer4')(x, topk=5),
            'pytorch-grad-cam Grad-CAM 1 class': lambda: peer_call(model, model.layer4, 'GradCAM', x, None)}
    def rss(field):
        line = next(l for l in open('/proc/self/status') if l.startswith(field))
        return int(line.split()[1]) * 1024
    with open('/proc/self/clear_refs', 'w') as f: f.write('5')  # reset the peak to the current resident size
    base = rss('VmRSS:')
    runs[contender]()
    return rss('VmHWM:') - base

def bench_memory(arch, bs, size):
    contenders = ['inference', 'fwd+grad floor', 'fastcam Grad-CAM 1 class', 'fastcam Grad-CAM top-5',
                  'fastcam LayerCAM top-5', 'fastcam Grad-CAM++ top-5']
    if pgc is not None: contenders.append('pytorch-grad-cam Grad-CAM 1 class')
    peaks = {}
    for c in contenders:
        command = [sys.executable, __file__, '--peak', c, '--arch', arch, '--bs', str(bs), '--size', str(size)]
        env = {**os.environ, 'MALLOC_MMAP_THRESHOLD_': '65536'}
        out = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
        peaks[c] = int(out.stdout.strip().splitlines()[-1])
    return peaks

def ratio(a, b): return a / b if b == b and b else float('nan')

def fmt(v, digits=2): return '-' if v != v else f"{v:.{digits}f}"

def report(rows, peaks, mem_setup, seconds):
    print("\n### fastcam methods vs floor and pytorch-grad-cam\n")
    print(f"{platform.processor() or platform.machine()}, {_cpu_name()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, grad-cam {_version('grad-cam')}; load average at start {START_LOAD}\n")
    print("| model | method | floor | floor ms | fastcam 1 class ms | / floor | 5 classes ms | 5 / 1 class | "
          "pgc 1 class ms | pgc / fastcam (1) | pgc 5 classes ms | pgc / fastcam (5) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['method']} | {r['floor_name']} | {r['floor']*1e3:.0f} | {r['one']*1e3:.0f} | "
              f"{fmt(ratio(r['one'], r['floor']))} | {r['five']*1e3:.0f} | {fmt(ratio(r['five'], r['one']))} | "
              f"{fmt(r['pgc_one']*1e3, 0)} | {fmt(ratio(r['pgc_one'], r['one']))} | {fmt(r['pgc_five']*1e3, 0)} | "
              f"{fmt(ratio(r['pgc_five'], r['five']))} |")
    for note in SCORECAM_NOTES: print(f"\n{note}")
    print(f"\n### Peak memory above the process's resident size before the call ({mem_setup})\n")
    print("| contender | peak MB | / inference |")
    print("|---|---|---|")
    for c, p in peaks.items(): print(f"| {c} | {p/2**20:.0f} | {fmt(ratio(p, peaks['inference']))} |")
    grad_rows = [r for r in rows if r['method'] not in ('Eigen-CAM', 'Score-CAM')]
    free_rows = [r for r in rows if r['method'] in ('Eigen-CAM',)]
    score = [r for r in rows if r['method'] == 'Score-CAM']
    resnet50_gradcam = [r for r in grad_rows if r['method'] == 'Grad-CAM' and r['model'] == 'resnet50']
    worst = lambda values: max(values, default=float('nan'))
    least = lambda values: min(values, default=float('nan'))
    checks = [
        ("every gradient method <= 1.10x its floor (1 class)", worst(ratio(r['one'], r['floor']) for r in grad_rows),
         1.10, '<='),
        ("Eigen-CAM <= 1.10x one inference forward", worst(ratio(r['one'], r['floor']) for r in free_rows), 1.10, '<='),
        ("top-5 <= 1.2x one class (gradient methods, layer4)", worst(ratio(r['five'], r['one']) for r in grad_rows),
         1.2, '<='),
        ("Grad-CAM 1 class <= 1.05x one inference forward (resnet50)",
         worst(ratio(r['one'], r['inference']) for r in resnet50_gradcam), 1.05, '<='),
        ("peak memory <= 1.1x inference (Grad-CAM top-5)",
         ratio(peaks.get('fastcam Grad-CAM top-5', float('nan')), peaks['inference']), 1.1, '<='),
        (">= 2x faster than pytorch-grad-cam, 1 class (gradient methods)",
         least(ratio(r['pgc_one'], r['one']) for r in grad_rows), 2, '>='),
        (">= 2x faster than pytorch-grad-cam, 5 classes (gradient methods and Eigen-CAM; ARCHITECTURE.md asks 5x)",
         least(ratio(r['pgc_five'], r['five']) for r in grad_rows + free_rows), 2, '>='),
        ("Score-CAM <= 1.1x its masked-forward floor", worst(ratio(r['one'], r['floor']) for r in score), 1.1, '<='),
        ("Score-CAM >= 3x faster than pytorch-grad-cam at equal maps (5 classes)",
         least(ratio(r['pgc_five'], r['five']) for r in score), 3, '>='),
        ("Score-CAM vs pytorch-grad-cam, 1 class (ARCHITECTURE.md asks 1.5x)",
         least(ratio(r['pgc_one'], r['one']) for r in score), 1.5, '>='),
    ]
    print("\n### Targets\n")
    print("| target | measured | met |")
    print("|---|---|---|")
    for text, value, bound, op in checks:
        met = '-' if value != value else ('yes' if (value <= bound if op == '<=' else value >= bound) else 'NO')
        print(f"| {text} | {fmt(value)} | {met} |")
    end_load = os.getloadavg()
    print(f"\n(bench ran {seconds/60:.1f} min; load average at the end {', '.join(f'{v:.1f}' for v in end_load)})")
    if max(end_load[:2]) > (os.cpu_count() or 1) + 0.5:
        print("WARNING: the machine was busier than its cores during the run: the times above are not reliable")

def _cpu_name():
    try: return next(l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name'))
    except (OSError, StopIteration): return 'unknown CPU'

def _version(dist):
    from importlib.metadata import version, PackageNotFoundError
    try: return version(dist)
    except PackageNotFoundError: return 'not installed'

SCORECAM_NOTES = []
PEER_REPEATS = 3 # pytorch-grad-cam's 1-class calls are timed in the first 3 repeats only (each costs ~3 fastcam calls)
START_LOAD = ', '.join(f"{v:.1f}" for v in os.getloadavg())

def bench_vit(repeats: int, bs: int = 8, size: int = 224):
    "Grad-CAM on a timm ViT's tokens with no arguments against inference, its floor and pytorch-grad-cam's reshape."
    import timm
    from fastcam.layers import default_layer
    torch.manual_seed(0)
    model = timm.create_model('vit_small_patch16_224', pretrained=False, num_classes=1000).eval()
    x = torch.randn(bs, 3, size, size)
    layer, _ = default_layer(model, x)  # blocks[-1].norm1, the layer pytorch-grad-cam's ViT tutorial uses
    grid = size // 16
    def reshape(t): return t[:, 1:].reshape(t.shape[0], grid, grid, t.shape[-1]).permute(0, 3, 1, 2)
    with torch.no_grad(): top5 = model(x).topk(5).indices
    def peer(k):
        cam = pgc.GradCAM(model=model, target_layers=[layer], reshape_transform=reshape)
        try:
            for j in range(k): cam(input_tensor=x, targets=[ClassifierOutputTarget(int(c)) for c in top5[:, j]])
        finally:
            getattr(cam, 'base_cam', cam).activations_and_grads.release()  # FinerCAM wraps a Grad-CAM
            model.zero_grad(set_to_none=True)
    contenders = {'inference forward': lambda: inference(model, x), 'fwd+grad floor': lambda: grad_floor(model, layer, x),
                  'fastcam 1 class': lambda: GradCAM(model)(x), 'fastcam 5 classes': lambda: GradCAM(model)(x, topk=5)}
    if pgc is not None:
        contenders['pytorch-grad-cam 1 class'] = lambda: peer(1)
        contenders['pytorch-grad-cam 5 classes'] = lambda: peer(5)
    times = {}
    for _ in range(repeats):
        for name, f in contenders.items(): times.setdefault(name, []).append(timed(f))
    t = {name: median(ts) for name, ts in times.items()}
    rows = [[name, f"{t[name]*1e3:.0f}", f"{t[name] / t['inference forward']:.2f}"] for name in t]
    for name in ('pytorch-grad-cam 1 class', 'pytorch-grad-cam 5 classes'):
        if name in t:
            ours = t['fastcam 1 class' if '1 class' in name else 'fastcam 5 classes']
            rows.append([f"speed-up over {name}", '', f"{t[name] / ours:.2f}"])
    for row in rows: print('  ' + ' | '.join(row), flush=True)
    from results import record
    record('bench_methods --vit: Grad-CAM on a ViT with no arguments',
           ['contender', 'ms / batch', '/ inference forward'], rows,
           notes=f"timm vit_small_patch16_224, random weights, batch {bs}, {size} px, CPU; fastcam's default layer "
                 f"(blocks[-1].norm1) and token reshape, no arguments; pytorch-grad-cam with the same layer and a "
                 f"reshape_transform, one call per class; medians of {repeats} interleaved repeats "
                 f"(python bench/bench_methods.py --vit)")

SHELF_ONE_FORWARD = [('Eigen-Grad-CAM', EigenGradCAM, 'EigenGradCAM'), ('Grad-CAM element-wise', GradCAMElementWise,
                      'GradCAMElementWise'), ('KPCA-CAM', KPCACAM, 'KPCA_CAM'), ('FEM', FEM, 'FEM'),
                     ('Finer-CAM', FinerCAM, 'FinerCAM'), ('ShapleyCAM', ShapleyCAM, 'ShapleyCAM'),
                     ('Seg-Eigen-CAM', SegEigenCAM, 'SegEigenCAM')]

def torchcam_call(model, peer_name, x, cls, layer='layer4', **kwargs):
    "torchcam's raw maps of class `cls` (one per item) for `x`."
    import torchcam.methods as tcm
    with getattr(tcm, peer_name)(model, layer, input_shape=tuple(x.shape[1:]), **kwargs) as extractor:
        scores = model(x)
        extractor(cls.tolist(), scores, normalized=False)

def bench_shelf(repeats: int, samples: int = 4, only: list | None = None):
    """The shelf's methods at 1 class against their peers, medians of `repeats` interleaved runs: the one-forward
    methods on resnet18, batch 8, 224 px, layer4, against pytorch-grad-cam; Score-CAM, SS-CAM and IS-CAM on resnet18,
    1 image, 64 px (512 masks at layer4, a 2x2 map), batch size 64, `samples` samples each, against pytorch-grad-cam
    (Score-CAM) and torchcam (SS-CAM, IS-CAM)."""
    torch.manual_seed(0)
    model = models.resnet18().eval()
    x, small = torch.randn(8, 3, 224, 224), torch.randn(1, 3, 64, 64)
    with torch.no_grad(): top, top_small = model(x).argmax(1), model(small).argmax(1)
    contenders = {}
    for name, cls, peer in SHELF_ONE_FORWARD:
        contenders[(name, 'fastcam')] = lambda cls=cls: cls(model, 'layer4')(x, top)
        if pgc is not None: contenders[(name, 'peer')] = lambda peer=peer: peer_call(model, model.layer4, peer, x, None)
    contenders[('Score-CAM', 'fastcam')] = lambda: ScoreCAM(model, 'layer4', batch_size=64)(small, top_small)
    if pgc is not None:
        contenders[('Score-CAM', 'peer')] = lambda: peer_call(model, model.layer4, 'ScoreCAM', small, None, 64)
    for name, cls, peer in [('SS-CAM', SSCAM, 'SSCAM'), ('IS-CAM', ISCAM, 'ISCAM')]:
        contenders[(name, 'fastcam')] = lambda cls=cls: cls(model, 'layer4', num_samples=samples, batch_size=64)(
            small, top_small)
        contenders[(name, 'peer')] = lambda peer=peer: torchcam_call(model, peer, small, top_small, num_samples=samples,
                                                                     batch_size=64)
    times = {}
    if only: contenders = {k: f for k, f in contenders.items() if k[0] in only}
    for _ in range(repeats):
        for key, f in contenders.items(): times.setdefault(key, []).append(timed(f))
    print(f"\n### The shelf's methods, 1 class (resnet18, layer4; {samples} samples for SS-CAM and IS-CAM)\n")
    print(f"{_cpu_name()}, torch {torch.__version__}, {torch.get_num_threads()} threads; load average at start "
          f"{START_LOAD}\n")
    print("| method | input | peer | fastcam ms | peer ms | peer / fastcam |")
    print("|---|---|---|---|---|---|")
    for name in dict.fromkeys(k[0] for k in contenders):
        ours, theirs = median(times[(name, 'fastcam')]), median(times.get((name, 'peer'), []))
        many = name in ('Score-CAM', 'SS-CAM', 'IS-CAM')
        peer = 'torchcam' if name in ('SS-CAM', 'IS-CAM') else 'pytorch-grad-cam'
        print(f"| {name} | {'1x64px, 512 masks' if many else '8x224px'} | {peer} | {ours*1e3:.0f} | "
              f"{fmt(theirs*1e3, 0)} | {fmt(ratio(theirs, ours))} |")
    print(f"\n(load average at the end {', '.join(f'{v:.1f}' for v in os.getloadavg())})")

MANY_FORWARDS = ('ScoreCAM', 'SSCAM', 'ISCAM', 'AblationCAM') # run on the small input: 512 masks or ablations
PGC_NAMES = {'KPCACAM': 'KPCA_CAM'} # pytorch-grad-cam's class names, where they differ from fastcam's
TORCHCAM_NAMES = {'SSCAM': 'SSCAM', 'ISCAM': 'ISCAM'} # the peers that only torchcam has

def load_before(path: str):
    "The `methods` module of another copy of fastcam at `path` (its package folder), imported as `fastcam_before`."
    import importlib, importlib.util
    from pathlib import Path
    spec = importlib.util.spec_from_file_location('fastcam_before', Path(path)/'__init__.py',
                                                  submodule_search_locations=[str(path)])
    package = importlib.util.module_from_spec(spec)
    sys.modules['fastcam_before'] = package
    spec.loader.exec_module(package)
    return importlib.import_module('fastcam_before.methods')

def family_model():
    "resnet18 (random weights) as fastai builds it, `nn.Sequential(body, head)`: CAM folds its head, Ablation-CAM runs it."
    from torch import nn
    torch.manual_seed(0)
    r = models.resnet18().eval()
    body = nn.Sequential(r.conv1, r.bn1, r.relu, r.maxpool, r.layer1, r.layer2, r.layer3, r.layer4)
    return nn.Sequential(body, nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), r.fc)).eval()

def bench_family_all(repeats: int, before: str | None = None, samples: int = 4, only: list | None = None):
    """Every registered method at 1 class, its time over one inference forward of the same batch, side by side with
    its peer (and with another copy of fastcam, `before`), medians of `repeats` interleaved runs. resnet18 (random
    weights) built as fastai builds it, at its last stage ('0.7', layer4); the one-forward methods on 8 images of
    224 px; Score-CAM, SS-CAM, IS-CAM and Ablation-CAM on 1 image of 64 px (512 masked inputs or ablations, batches of
    64; `samples` samples for SS-CAM and IS-CAM); RefineCAM at layer3 and layer4; FullGrad with no layer."""
    from fastcam.all import METHODS
    old = load_before(before) if before else None
    model, layer = family_model(), '0.7'
    torch.manual_seed(0)
    big, small = torch.randn(8, 3, 224, 224), torch.randn(1, 3, 64, 64)
    with torch.no_grad(): top = {id(big): model(big).argmax(1), id(small): model(small).argmax(1)}
    target = model[0][7]
    def make(methods, name):
        "A call of method `name` from the module `methods` (fastcam's or the copy's), or None where it does not run."
        cls = getattr(methods, name, None)
        if cls is None: return None
        x = small if name in MANY_FORWARDS else big
        options = dict(num_samples=samples) if name in ('SSCAM', 'ISCAM') else {}
        if name in MANY_FORWARDS: options['batch_size'] = 64
        if name == 'RefineCAM': method = lambda: cls(model, ['0.6', '0.7'])
        elif name == 'FullGrad': method = lambda: cls(model)
        else: method = lambda: cls(model, layer, **options)
        try: method()(x[:1], top[id(x)][:1])  # warm-up; a method that refuses this model is left out
        except (ValueError, TypeError, NotImplementedError): return None
        return lambda: method()(x, top[id(x)])
    def peer(name):
        x = small if name in MANY_FORWARDS else big
        if name in TORCHCAM_NAMES:
            return lambda: torchcam_call(model, TORCHCAM_NAMES[name], x, top[id(x)], layer='0.7', num_samples=samples,
                                         batch_size=64)
        if pgc is None or not hasattr(pgc, PGC_NAMES.get(name, name)): return None
        if name == 'RefineCAM':
            def refine():
                with contextlib.redirect_stderr(io.StringIO()):
                    pgc.RefineCAM(model, [model[0][6], model[0][7]])(input_tensor=x, targets=None)
                model.zero_grad(set_to_none=True)
            return refine
        return lambda: peer_call(model, target, PGC_NAMES.get(name, name), x, None,
                                 64 if name in MANY_FORWARDS else None)
    from fastcam import methods as ours
    names = sorted(n for n in {c.__name__ for c in METHODS.values()} if not only or n in only)
    contenders = {('inference', 'big'): lambda: inference(model, big),
                  ('inference', 'small'): lambda: inference(model, small)}
    for name in names:
        for who, f in (('fastcam', make(ours, name)), ('before', make(old, name) if old else None),
                       ('peer', peer(name))):
            if f is not None and (who == 'fastcam' or (name, 'fastcam') in contenders): contenders[(name, who)] = f
    times, keys = {}, list(contenders)
    for r in range(repeats):  # a call after a peer's (whose backward fills parameter gradients) runs slower: the
        order = keys if r % 2 == 0 else [(k[0], {'fastcam': 'before', 'before': 'fastcam'}.get(k[1], k[1]))
                                         if (k[0], 'before') in contenders else k for k in keys]  # pair swaps turns
        for key in order: times.setdefault(key, []).append(timed(contenders[key]))
        print(f"  repeat {r + 1} of {repeats} done", flush=True)
    t = {k: median(v) for k, v in times.items()}
    rows = []
    for name in dict.fromkeys(k[0] for k in contenders if k[0] != 'inference'):
        base = t[('inference', 'small' if name in MANY_FORWARDS else 'big')]
        ours_ = t[(name, 'fastcam')]
        row = [name, '1x64px' if name in MANY_FORWARDS else '8x224px', f"{ours_*1e3:.0f}", f"{ours_ / base:.2f}"]
        if old: row.append(fmt(ratio(t.get((name, 'before'), float('nan')), base)))
        peer_name = 'torchcam' if name in TORCHCAM_NAMES else 'pytorch-grad-cam'
        row += [peer_name if (name, 'peer') in t else '-', fmt(ratio(t.get((name, 'peer'), float('nan')), base)),
                fmt(ratio(t.get((name, 'peer'), float('nan')), ours_))]
        rows.append(row)
    header = ['method', 'input', 'fastcam ms', 'fastcam / forward'] + (['before / forward'] if old else []) + \
             ['peer', 'peer / forward', 'peer / fastcam']
    print('| ' + ' | '.join(header) + ' |')
    print('|' + '---|' * len(header))
    for row in rows: print('| ' + ' | '.join(row) + ' |')
    load = ', '.join(f"{v:.1f}" for v in os.getloadavg())
    print(f"\n(inference forward: {t[('inference', 'big')]*1e3:.0f} ms on 8x224px, "
          f"{t[('inference', 'small')]*1e3:.1f} ms on 1x64px; load average at start {START_LOAD}, at the end {load})")
    from results import record
    if only: return  # a few rows: printed, not recorded
    record('bench_methods --family: every method against one inference forward and its peer', header, rows,
           notes=f"Every registered method that runs on a CNN (attention rollout and LeGrad need a ViT), 1 class (the "
                 f"predicted one), over one inference forward of its own batch, side by side with its peer; resnet18 "
                 f"(random weights) built as fastai builds it, at layer4; the one-forward methods on 8 images of 224 "
                 f"px, Score-CAM, SS-CAM and IS-CAM ({samples} samples) and Ablation-CAM on 1 image of 64 px (512 "
                 f"masks or ablations, batches of 64); RefineCAM at layer3 and layer4, FullGrad with no layer; "
                 f"medians of {repeats} interleaved repeats; load average {START_LOAD} at the start, {load} at the end"
                 + (f"; 'before': the package at {before}, timed in the same run" if old else '')
                 + ". Command: `python bench/bench_methods.py --family" + (" --before PATH" if old else '') + "`.")

def bench_scorecam_repeated(repeats: int, arch: str = 'resnet18', bs: int = 2, size: int = 112, batch_size: int = 64):
    """The Score-CAM row alone, as in the full run (resnet18, 2 images of 112 px, 1,024 masked inputs at layer4, batches
    of 64 for everyone): the floors (the masked forwards alone, in contiguous and channels-last format), fastcam and
    pytorch-grad-cam at 1 class, medians of `repeats` interleaved runs; 5 classes once each."""
    model, x, top5, n, floor = scorecam_setup(arch, bs, size, batch_size)
    method = ScoreCAM(model, 'layer4', batch_size=batch_size)
    contenders = {'floor (masked forwards, contiguous)': lambda: floor(torch.contiguous_format),
                  'floor (masked forwards, channels-last)': lambda: floor(torch.channels_last),
                  'fastcam 1 class': lambda: method(x)}
    if pgc is not None:
        contenders['pytorch-grad-cam 1 class'] = lambda: peer_call(model, model.layer4, 'ScoreCAM', x, None, batch_size)
    times = {}
    for r in range(repeats):
        for name, f in contenders.items():
            times.setdefault(name, []).append(timed(f))
            print(f"  repeat {r}: {name} {times[name][-1]:.1f} s", flush=True)
    t = {name: median(ts) for name, ts in times.items()}
    t['fastcam 5 classes'] = timed(lambda: method(x, topk=5))
    if pgc is not None:
        t['pytorch-grad-cam 5 classes'] = timed(lambda: peer_call(model, model.layer4, 'ScoreCAM', x, top5, batch_size))
    print(f"\n### Score-CAM ({arch}, {bs}x{size} px, {n} masked inputs at layer4, batch size {batch_size})\n")
    print(f"{_cpu_name()}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"grad-cam {_version('grad-cam')}; load average at start {START_LOAD}; medians of {repeats} interleaved "
          f"repeats at 1 class, one run at 5\n")
    print("| contender | s | / floor (contiguous) | pytorch-grad-cam / this |")
    print("|---|---|---|---|")
    for name, v in t.items():
        peer = t.get('pytorch-grad-cam 5 classes' if '5 classes' in name else 'pytorch-grad-cam 1 class', float('nan'))
        base = t['floor (masked forwards, contiguous)']
        print(f"| {name} | {v:.1f} | {fmt(ratio(v, base))} | {fmt(ratio(peer, v))} |")
    print(f"\n(load average at the end {', '.join(f'{v:.1f}' for v in os.getloadavg())})")

def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--quick', action='store_true', help='resnet18 only, one repeat, small Score-CAM')
    parser.add_argument('--repeats', type=int, default=None, help='interleaved repeats (default 5, 1 with --quick)')
    parser.add_argument('--vit', action='store_true', help='only the ViT row (timm vit_small, batch 8, 224 px)')
    parser.add_argument('--shelf', action='store_true', help="only the shelf's methods against their peers, 1 class")
    parser.add_argument('--methods', nargs='+', help="with --shelf or --family: only these rows, e.g. --methods FEM")
    parser.add_argument('--scorecam', action='store_true', help='only the Score-CAM row, in interleaved repeats')
    parser.add_argument('--family', action='store_true', help='every registered method against a forward and its peer')
    parser.add_argument('--before', help="with --family: another copy of the fastcam package folder, timed beside")
    parser.add_argument('--peak', help=argparse.SUPPRESS)
    parser.add_argument('--arch', default='resnet50', help=argparse.SUPPRESS)
    parser.add_argument('--bs', type=int, default=16, help=argparse.SUPPRESS)
    parser.add_argument('--size', type=int, default=224, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peak:
        print(peak_child(args.peak, args.arch, args.bs, args.size))
        return
    if args.vit:
        bench_vit(args.repeats or 3)
        return
    if args.shelf:
        bench_shelf(args.repeats or 3, only=args.methods)
        return
    if args.scorecam:
        bench_scorecam_repeated(args.repeats or 3)
        return
    if args.family:
        bench_family_all(args.repeats or 3, args.before, only=args.methods)
        return
    if pgc is None: print("pytorch-grad-cam is not installed: its columns stay empty (pip install grad-cam)")
    start = time.perf_counter()
    repeats = args.repeats or (1 if args.quick else 5)
    rows = []
    for arch in (['resnet18'] if args.quick else ['resnet18', 'resnet50']):
        rows += bench_family(arch, 8, 224, repeats)
    rows.append(bench_scorecam('resnet18', 1, 64, 64) if args.quick else bench_scorecam('resnet18', 2, 112, 64))
    mem = ('resnet18', 16, 224) if args.quick else ('resnet50', 16, 224)
    peaks = bench_memory(*mem)
    report(rows, peaks, f"{mem[0]}, batch {mem[1]}, {mem[2]} px, layer4, each in a fresh process",
           time.perf_counter() - start)

if __name__ == '__main__': main()
