"""Each pytest worker's tests in the order they ran, with their seconds, and when each worker finished: how well the
two workers share the suite (conftest.py's LONG_FIRST decides the order).

    FASTCAM_TIMELINE=/tmp/timeline.tsv pytest
    python tools/timeline.py /tmp/timeline.tsv [--top 15]"""
import argparse
from collections import defaultdict

def read(path) -> dict:
    "worker -> [(start, end, test)] in the order they ran."
    workers = defaultdict(list)
    for line in open(path):
        worker, start, end, test = line.rstrip('\n').split('\t')
        workers[worker].append((float(start), float(end), test))
    return {w: sorted(runs) for w, runs in sorted(workers.items())}

if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('path'); parser.add_argument('--top', type=int, default=15)
    args = parser.parse_args()
    workers = read(args.path)
    t0 = min(runs[0][0] for runs in workers.values())
    for worker, runs in workers.items():
        busy = sum(end - start for start, end, _ in runs)
        print(f"{worker}: {len(runs)} tests, busy {busy:.0f} s, finished at {runs[-1][1] - t0:.0f} s")
        for start, end, test in sorted(runs, key=lambda r: r[0] - r[1])[:args.top]:
            print(f"  {start - t0:6.0f} s  {end - start:6.1f} s  {test}")
