"""Maps streamed to disk (`fastcam.store`): peak memory against the number of items, and throughput on the CPU.

    python bench/bench_store.py [--items 256] [--valid 600] [--repeats 3] [--threads 2]

Memory: each run in a fresh process writes the maps of `--items` and of 10x as many items (a tiny CAM model, 10 maps of
32x32 per item, 40 kB) and reports its peak RSS during the writing (VmHWM reset after the imports), for `store_maps`
and for a naive writer that assigns each batch to one `np.memmap` of the whole output. Target (issue 14): the peak
grows by less than 10% for 10x the items.
Both tables go to bench/results.md (bench/results.py).
Throughput: the digits validation set through resnet18 cut after layer2 (random weights), batch 64: inference alone
(forward under no_grad), `learn.cam_dl` (maps kept in RAM) and `store_maps` (maps written to disk), median of
`--repeats` interleaved runs, in items/s."""
import argparse, json, os, statistics, subprocess, sys, tempfile, time
from pathlib import Path
import torch

def _status_kib(key: str) -> int:
    with open('/proc/self/status') as f: return int(next(l for l in f if l.startswith(key)).split()[1])

def memory_child(n: int, out: Path, writer: str):
    "Write the maps of `n` noise pictures to `out` in this fresh process; print the peak RSS while writing."
    import numpy as np
    from torch import nn
    from fastai.data.core import DataLoaders
    from fastai.data.load import DataLoader
    from fastai.learner import Learner
    from fastcam.methods import cam_method
    from fastcam.store import store_maps

    class Noise:
        "`n` random 3x32x32 pictures made on demand, so that the dataset itself takes no memory."
        def __len__(self): return n
        def __getitem__(self, i):
            return torch.randn(3, 32, 32, generator=torch.Generator().manual_seed(i)), torch.tensor(i % 10)

    torch.manual_seed(0)
    model = nn.Sequential(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU()),
                          nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10)))
    dl = DataLoader(Noise(), bs=64)
    learn = Learner(DataLoaders(dl, dl), model, loss_func=nn.CrossEntropyLoss())
    with open('/proc/self/clear_refs', 'w') as f: f.write('5')  # peak RSS := current RSS, so the imports' peak is out
    base = _status_kib('VmRSS:')
    if writer == 'store': store_maps(learn, out, dl=dl, method='cam', topk=10, progress=False)  # 40 kB an item
    else:  # the naive way: one memory map of the whole output, each batch assigned to its rows
        out.mkdir(parents=True)
        m, maps, start = cam_method(model, 'cam'), None, 0
        for xb, _ in dl:
            res = m.compute(xb, topk=10)
            if maps is None:
                maps = np.lib.format.open_memmap(out/'maps.npy', mode='w+', dtype=np.float32,
                                                 shape=(n, *res.maps.shape[1:]))
            maps[start:start + len(xb)] = res.maps.numpy()
            start += len(xb)
        maps.flush()
        del maps
    print(json.dumps(dict(base_mib=base / 1024, peak_mib=_status_kib('VmHWM:') / 1024,
                          written_mib=(out/'maps.npy').stat().st_size / 2**20)))

def peak_memory(n: int, out: Path, writer: str = 'store') -> dict:
    "Run `memory_child` in a fresh process (one torch thread) and return what it measured."
    cmd = [sys.executable, __file__, '--memory-child', str(n), '--out', str(out), '--writer', writer]
    res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, 'OMP_NUM_THREADS': '1'})
    if res.returncode != 0: raise RuntimeError(res.stderr[-3000:])
    return json.loads(res.stdout.strip().splitlines()[-1])

def throughput(n_valid: int, repeats: int) -> dict:
    "Items per second of inference, `learn.cam_dl` and `store_maps` on the digits validation set."
    from fastai.torch_core import set_seed
    from fastcam.data import make_digits, digits_dls
    from fastcam.learner import cam_learner
    from fastcam.store import store_maps
    tmp = Path(tempfile.mkdtemp())
    make_digits(tmp/'data', n_train=100, n_valid=n_valid)
    set_seed(0)
    learn = cam_learner(digits_dls(tmp/'data', bs=64))
    model, dl = learn.model.eval(), learn.dls.valid
    def inference():
        with torch.no_grad():
            for xb, _ in dl: model(xb)
    runs = iter(range(10**6))
    contenders = {'inference forward (no_grad)': inference,
                  'learn.cam_dl (maps in RAM)': lambda: learn.cam_dl(progress=False),
                  'store_maps (maps to disk)': lambda: store_maps(learn, tmp/f'maps{next(runs)}', progress=False)}
    for f in contenders.values(): f()  # warm up
    times = {k: [] for k in contenders}
    for _ in range(repeats):  # interleaved, so drifts of a shared machine hit every contender alike
        for k, f in contenders.items():
            start = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - start)
    return {k: n_valid / statistics.median(v) for k, v in times.items()}

def main():
    p = argparse.ArgumentParser()
    p.add_argument('--items', type=int, default=256)
    p.add_argument('--valid', type=int, default=600)
    p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--memory-child', type=int, default=None)
    p.add_argument('--out', default=None)
    p.add_argument('--writer', default='store')
    a = p.parse_args()
    torch.set_num_threads(1 if a.memory_child else a.threads)
    if a.memory_child: return memory_child(a.memory_child, Path(a.out), a.writer)

    from results import record
    tmp = Path(tempfile.mkdtemp())
    print(f"peak RSS while writing maps (MiB; fresh process each; baseline after imports), {a.items} vs "
          f"{10 * a.items} items, 40 kB of maps an item")
    rows = []
    for writer in ('store', 'memmap'):
        small = peak_memory(a.items, tmp/f'{writer}_small', writer)
        large = peak_memory(10 * a.items, tmp/f'{writer}_large', writer)
        name = 'store_maps (pwrite)' if writer == 'store' else 'one np.memmap (naive)'
        above = [r['peak_mib'] - r['base_mib'] for r in (small, large)]
        rows.append([name, f"{small['peak_mib']:.0f}", f"{large['peak_mib']:.0f}",
                     f"{large['peak_mib'] / small['peak_mib']:.3f}", f"{above[0]:.0f} -> {above[1]:.0f}",
                     f"{large['written_mib']:.0f}"])
        print('  ' + ' | '.join(rows[-1]), flush=True)
    record('bench_store: peak memory while writing maps', ['writer', f'peak MiB, {a.items} items',
           f'peak MiB, {10 * a.items} items', 'ratio (target < 1.10)', 'MiB above baseline', 'MiB of maps written'],
           rows, threads=1, notes=f"a tiny CAM model (conv 3->8, average pool, linear 8->10), noise pictures of 32 px, "
           f"top-10 maps of 32x32 (40 kB an item), batch 64; each run in a fresh process, peak RSS (VmHWM) reset after "
           f"the imports (python bench/bench_store.py --items {a.items})")
    print(f"\nthroughput, {a.valid} digits pictures of 64 px, resnet18 cut after layer2, batch 64, CAM, "
          f"{a.threads} threads (items/s, median of {a.repeats}):")
    rates = throughput(a.valid, a.repeats)
    base = rates['inference forward (no_grad)']
    rows = [[k, f"{v:.0f}", f"{base / v:.2f}"] for k, v in rates.items()]
    for row in rows: print('  ' + ' | '.join(row))
    record('bench_store: throughput on the CPU', ['contender', 'items/s', 'time / inference'], rows,
           threads=a.threads, notes=f"{a.valid} digits pictures of 64 px (fastcam.data), resnet18 cut after layer2, "
           f"random weights, CAM, batch 64, median of {a.repeats} interleaved runs (python bench/bench_store.py)")

if __name__ == '__main__': main()
