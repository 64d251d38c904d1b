"""Where a notebook's time goes: run it as the suite does (one torch thread, as each of the two pytest workers has) and
print each code cell's seconds, the slowest first.

    python tools/cell_times.py tutorials/quickstart [--threads 1] [--top 12] [--fits FOLDER]

Other work on the machine slows every cell alike: read the shares, not the seconds. `--fits` routes the notebook's
`fit_one_cycle` calls through tests/fit_cache.py's cache in FOLDER (a suite run's `fits` folder, or any folder): a fit
stored there is replayed, so that a change after the training is timed, and checked, without training again."""
import argparse, sys, time
from pathlib import Path
import torch
from fastcore.nbio import read_nb
from execnb.shell import CaptureShell
from fastcore.xtras import working_directory

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path: sys.path.insert(0, str(ROOT))
from tools.notebooks import is_not_run

def cell_times(rel: str) -> list:
    "`(seconds, index, first line)` of each code cell of `nbs/rel` that the tests run."
    src = ROOT/'nbs'/(rel if rel.endswith('.ipynb') else rel + '.ipynb')
    nb, shell, times = read_nb(src), CaptureShell(src), []
    with working_directory(src.parent):
        for i, cell in enumerate(nb.cells):
            if cell.cell_type != 'code' or is_not_run(cell.source): continue
            if '#| cuda' in cell.source and not torch.cuda.is_available(): continue  # as the suite skips them
            start = time.perf_counter()
            shell.cell(cell)
            if shell.exc: raise RuntimeError(f"cell {i} failed: {shell.exc}")
            times.append((time.perf_counter() - start, i, cell.source.splitlines()[0] if cell.source else ''))
    return times

if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('notebook'); parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--top', type=int, default=12)
    parser.add_argument('--fits', help="a folder of fits (tests/fit_cache.py) to replay from and store to")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.fits:
        sys.path.insert(0, str(ROOT/'tests'))
        from fit_cache import FitCache
        FitCache(args.fits).install()
    times = cell_times(args.notebook)
    total = sum(t for t, *_ in times)
    print(f"{args.notebook}: {total:.1f} s in {len(times)} cells")
    for t, i, line in sorted(times, reverse=True)[:args.top]:
        print(f"{t:7.1f} s {100 * t / total:4.0f}%  cell {i:3d}  {line[:70]}")
