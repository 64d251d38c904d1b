"""CAM and Grad-CAM against one inference forward, measured side by side in one run (CPU).

    python bench/bench_cam.py [--repeats 5] [--batch 8] [--size 224] [--threads 2]

Prints, and records in bench/results.md (see bench/results.py), a table of median times and the ratios that ARCHITECTURE.md
and issue 4 target:
Grad-CAM / (forward + autograd.grad to the layer) <= 1.10, CAM / forward <= 1.05, top-5 / top-1 <= 1.2,
and peak memory of Grad-CAM at layer4 / one inference forward (batch 16, each in its own process) <= 1.1."""
import argparse, json, platform, resource, statistics, subprocess, sys, time
import torch
from torchvision.models import resnet50
from fastcam.methods import CAM, GradCAM
from results import record
from memory import rss_kib

def full_graph_gradient(model, layer, x):
    "A forward with grad through the whole model and `torch.autograd.grad` of the top score to `layer`'s output."
    acts = {}
    h = layer.register_forward_hook(lambda m, i, o: acts.update(a=o))
    out = model(x)
    h.remove()
    torch.autograd.grad(out.max(1).values.sum(), acts['a'])

def memory_child(kind: str, batch: int, size: int):
    "Run one operation in this fresh process; print its peak memory above the baseline (model and input loaded)."
    torch.manual_seed(0)
    model = resnet50().eval()
    x = torch.randn(batch, 3, size, size)
    base = rss_kib()
    if kind == 'forward':
        with torch.no_grad(): model(x)
    elif kind == 'gradcam': GradCAM(model, 'layer4')(x)
    elif kind == 'full_graph': full_graph_gradient(model, model.layer4, x)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({'extra_mib': (peak - base) / 1024, 'peak_mib': peak / 1024}))

def measure_memory(kind, batch, size):
    out = subprocess.run([sys.executable, __file__, '--memory-child', kind, '--batch', str(batch), '--size', str(size)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])

def main():
    p = argparse.ArgumentParser()
    p.add_argument('--repeats', type=int, default=5)
    p.add_argument('--batch', type=int, default=8)
    p.add_argument('--size', type=int, default=224)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--memory-child', default=None)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    if a.memory_child: return memory_child(a.memory_child, a.batch, a.size)

    torch.manual_seed(0)
    model = resnet50().eval()
    x = torch.randn(a.batch, 3, a.size, a.size)
    gradcam, cam = GradCAM(model, 'layer4'), CAM(model, 'layer4')
    gradcam3 = GradCAM(model, 'layer3')

    def forward():
        with torch.no_grad(): model(x)
    def floor(layer): return lambda: full_graph_gradient(model, layer, x)
    contenders = {
        'inference forward (no_grad)': forward,
        'forward + autograd.grad to layer4': floor(model.layer4),
        'forward + autograd.grad to layer3': floor(model.layer3),
        'fastcam CAM, predicted class': lambda: cam(x),
        'fastcam GradCAM layer4, predicted class': lambda: gradcam(x),
        'fastcam GradCAM layer4, top-5 classes': lambda: gradcam(x, topk=5),
        'fastcam GradCAM layer3, predicted class': lambda: gradcam3(x),
        'fastcam GradCAM layer3, top-5 classes': lambda: gradcam3(x, topk=5),
    }
    for f in contenders.values(): f()  # warm up
    times = {k: [] for k in contenders}
    for _ in range(a.repeats):  # interleaved, so drifts of a shared machine hit every contender alike
        for k, f in contenders.items():
            t = time.perf_counter(); f(); times[k].append(time.perf_counter() - t)
    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    fwd = med['inference forward (no_grad)']
    print(f"## fastcam bench: resnet50 (random weights), batch {a.batch}, {a.size} px, CPU, {a.threads} threads, "
          f"median of {a.repeats} interleaved runs")
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}\n")
    print("| contender | ms / batch | / inference forward |\n|---|---|---|")
    for k, v in med.items(): print(f"| {k} | {v:.0f} | {v / fwd:.2f} |")

    mem = {k: measure_memory(k, 16, a.size) for k in ['forward', 'gradcam', 'full_graph']}
    print("\nPeak memory above the loaded model and input, batch 16, each in its own process:\n")
    print("| operation | extra MiB | process peak MiB |\n|---|---|---|")
    names = {'forward': 'inference forward (no_grad)', 'gradcam': 'fastcam GradCAM layer4',
             'full_graph': 'forward with grad + autograd.grad (full graph)'}
    for k, v in mem.items(): print(f"| {names[k]} | {v['extra_mib']:.0f} | {v['peak_mib']:.0f} |")

    ratios = [
        ('GradCAM layer4 / (forward + autograd.grad to layer4)',
         med['fastcam GradCAM layer4, predicted class'] / med['forward + autograd.grad to layer4'], 1.10),
        ('CAM / inference forward', med['fastcam CAM, predicted class'] / fwd, 1.05),
        ('GradCAM layer4 / inference forward', med['fastcam GradCAM layer4, predicted class'] / fwd, 1.05),
        ('GradCAM layer4: top-5 / top-1',
         med['fastcam GradCAM layer4, top-5 classes'] / med['fastcam GradCAM layer4, predicted class'], 1.2),
        ('GradCAM layer3: top-5 / top-1',
         med['fastcam GradCAM layer3, top-5 classes'] / med['fastcam GradCAM layer3, predicted class'], 2.0),
        ('peak memory above baseline: GradCAM layer4 / inference forward',
         mem['gradcam']['extra_mib'] / mem['forward']['extra_mib'], 1.1),
        ('process peak memory: GradCAM layer4 / inference forward',
         mem['gradcam']['peak_mib'] / mem['forward']['peak_mib'], 1.1),
    ]
    print("\n| ratio | measured | target | met |\n|---|---|---|---|")
    for name, r, target in ratios: print(f"| {name} | {r:.2f} | <= {target} | {'yes' if r <= target else 'NO'} |")

    setup = (f"resnet50 (random weights), batch {a.batch}, {a.size} px, CPU, median of {a.repeats} interleaved runs; "
             f"`python bench/bench_cam.py --repeats {a.repeats}`")
    record('bench_cam: time against one inference forward', ['contender', 'ms / batch', '/ inference forward'],
           [[k, round(v), round(v / fwd, 2)] for k, v in med.items()], notes=setup, threads=a.threads)
    record('bench_cam: peak memory', ['operation', 'extra MiB', 'process peak MiB'],
           [[names[k], round(v['extra_mib']), round(v['peak_mib'])] for k, v in mem.items()],
           notes=f"resnet50, batch 16, {a.size} px, each in its own process; extra: above the loaded model and input",
           threads=a.threads)
    print('\nrecorded in', record('bench_cam: ratios and targets', ['ratio', 'measured', 'target', 'met'],
                                 [[name, round(r, 2), f"<= {target}", 'yes' if r <= target else 'NO']
                                  for name, r, target in ratios], notes=setup, threads=a.threads))

if __name__ == '__main__': main()
