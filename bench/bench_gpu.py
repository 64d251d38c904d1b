"""Maps on a GPU at scale: Grad-CAM throughput and peak memory against inference, and CAMCallback's cost on a GPU fit.

    python bench/bench_gpu.py [--batch 256] [--repeats 5] [--epochs 2]

Needs CUDA: without it, it prints one line saying it was not run and exits 0. On a GPU it measures (issue 14):
- resnet50 (Grad-CAM at layer4) and a ViT-B/16 (Grad-CAM at the last block's first LayerNorm, `vit_reshape`), random
  weights, batch `--batch` of 224 px, bf16 autocast, channels-last: images/s of an inference forward, Grad-CAM top-1
  and Grad-CAM top-5 (median of `--repeats` interleaved runs), and peak `torch.cuda.max_memory_allocated` above the
  model and the batch, each against inference;
- the digits demo task (3,000 training pictures) on the GPU: time of `fit(--epochs)` with and without
  `CAMCallback(items=16)`.
It prints the table and writes it to bench/results.md (bench/results.py), for the README to cite."""
import argparse, statistics, sys, tempfile, time
from pathlib import Path
import torch

def _median_seconds(fns: dict, repeats: int) -> dict:
    "Median wall time of each function, run interleaved after one warm-up, with the GPU synchronized around each."
    for f in fns.values(): f()
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            torch.cuda.synchronize()
            start = time.perf_counter()
            f()
            torch.cuda.synchronize()
            times[k].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}

def _peak_mib(f) -> float:
    "Peak memory allocated while `f` runs, above what was allocated before it (MiB)."
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    f()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - before) / 2**20

def bench_model(name: str, model: torch.nn.Module, layer: str, batch: int, repeats: int, reshape=None) -> list:
    "Rows (model, contender, images/s, x inference time, peak MiB, x inference peak) for one model."
    from fastcam.methods import GradCAM
    model = model.cuda().eval().to(memory_format=torch.channels_last)
    x = torch.randn(batch, 3, 224, 224, device='cuda').to(memory_format=torch.channels_last)
    gradcam = GradCAM(model, layer, reshape=reshape)
    def inference():
        with torch.no_grad(), torch.autocast('cuda', dtype=torch.bfloat16):
            model(x)
    def maps(k):
        def run():
            with torch.autocast('cuda', dtype=torch.bfloat16):
                gradcam.compute(x, topk=k)
        return run
    fns = {'inference forward (no_grad)': inference, 'Grad-CAM top-1': maps(1), 'Grad-CAM top-5': maps(5)}
    seconds = _median_seconds(fns, repeats)
    peaks = {k: _peak_mib(f) for k, f in fns.items()}
    base_s, base_m = seconds['inference forward (no_grad)'], peaks['inference forward (no_grad)']
    rows = [(name, k, batch / s, s / base_s, peaks[k], peaks[k] / base_m) for k, s in seconds.items()]
    model = x = gradcam = None  # free the GPU memory before the next model (the closures above are done)
    torch.cuda.empty_cache()
    return rows

def bench_callback(epochs: int) -> tuple:
    "Seconds of `fit(epochs)` on the digits task on the GPU, without and with `CAMCallback(items=16)`."
    from fastai.torch_core import set_seed
    from fastcam.callback import CAMCallback
    from fastcam.data import make_digits, digits_dls
    from fastcam.learner import cam_learner
    tmp = Path(tempfile.mkdtemp())
    make_digits(tmp/'data', n_train=3000, n_valid=600)
    seconds = []
    for cbs in ([], [CAMCallback(items=16, fname=None)], [], [CAMCallback(items=16, fname=None)]):
        set_seed(0)
        learn = cam_learner(digits_dls(tmp/'data', bs=64, device='cuda'), path=tmp)
        with learn.no_bar(), learn.no_logging():
            torch.cuda.synchronize()
            start = time.perf_counter()
            learn.fit(epochs, 1e-2, cbs=cbs)
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
    return min(seconds[0::2]), min(seconds[1::2])  # the first fit also pays CUDA's warm-up

def main():
    p = argparse.ArgumentParser()
    p.add_argument('--batch', type=int, default=256)
    p.add_argument('--repeats', type=int, default=5)
    p.add_argument('--epochs', type=int, default=2)
    a = p.parse_args()
    if not torch.cuda.is_available():
        print("bench_gpu: no CUDA device here, so it was not run (it needs a GPU; nothing to measure on a CPU)")
        return 0
    from torchvision.models import resnet50, vit_b_16
    from fastcam.layers import vit_reshape
    torch.manual_seed(0)
    rows = bench_model('resnet50', resnet50(), 'layer4', a.batch, a.repeats)
    rows += bench_model('ViT-B/16', vit_b_16(), 'encoder.layers.encoder_layer_11.ln_1', a.batch, a.repeats,
                        reshape=vit_reshape())
    plain, watched = bench_callback(a.epochs)
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, batch {a.batch}, 224 px, bf16 autocast, "
          f"channels-last, random weights, median of {a.repeats}\n")
    print("| model | contender | images/s | time vs inference | peak MiB | peak vs inference |")
    print("|---|---|---|---|---|---|")
    for model, k, ips, t, mib, m in rows: print(f"| {model} | {k} | {ips:.0f} | {t:.2f}x | {mib:.0f} | {m:.2f}x |")
    print(f"\nCAMCallback(items=16) on the digits task, fit({a.epochs}): {plain:.1f} s without, {watched:.1f} s with "
          f"(+{100 * (watched / plain - 1):.1f}%)")
    from results import record
    table = [[model, k, f"{ips:.0f}", f"{t:.2f}", f"{mib:.0f}", f"{m:.2f}"] for model, k, ips, t, mib, m in rows]
    table.append([f'digits, fit({a.epochs})', 'CAMCallback(items=16)', '', f"{watched / plain:.3f}", '', ''])
    record('bench_gpu: maps on a GPU', ['model', 'contender', 'images/s', 'time / inference', 'peak MiB',
           'peak / inference'], table, notes=f"batch {a.batch}, 224 px, bf16 autocast, channels-last, random weights, "
           f"median of {a.repeats} interleaved runs; peak: torch.cuda.max_memory_allocated above the model and batch; "
           f"last row: fit time with the callback / without (python bench/bench_gpu.py)")
    return 0

if __name__ == '__main__': sys.exit(main())
