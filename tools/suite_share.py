"""How a suite run's worker-seconds split between the tests that exist only for issues 22-25 (beyond 2-D, text,
the shelf of methods and metrics, shortcuts) and the rest, from a timeline written with FASTCAM_TIMELINE=file.

    python tools/suite_share.py timeline.tsv

The wall time of the rest alone is estimated as half its worker-seconds (two workers kept busy) plus the start-up
the run had (pytest's reported time minus the busier worker's seconds, passed with --startup)."""
import argparse
from collections import defaultdict

LATER = ('test_attention.py', 'test_concepts.py', 'test_engine_options.py', 'test_ndim_learners.py',
         'test_ndim_peers.py', 'test_several_inputs.py', 'test_shelf_methods.py', 'test_shelf_metrics.py',
         'test_shortcuts.py', 'test_text.py', 'test_tsai.py', '15_text.ipynb', '16_shortcuts.ipynb',
         '17_attention.ipynb', '18_concepts.ipynb', 'tutorials/signals.ipynb', 'tutorials/text.ipynb',
         'tutorials/volumes.ipynb')

def split(path: str) -> dict:
    busy, share = defaultdict(float), defaultdict(float)
    for line in open(path):
        worker, start, end, test = line.rstrip('\n').split('\t')
        seconds = float(end) - float(start)
        busy[worker] += seconds
        share['issues 22-25' if any(key in test for key in LATER) else 'the rest'] += seconds
    return dict(busy=dict(busy), share=dict(share))

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('timeline'); p.add_argument('--startup', type=float, default=18.)
    p.add_argument('--extra', type=float, default=0.,
                   help="worker-seconds of later issues' cells inside older notebooks, moved to 'issues 22-25'")
    a = p.parse_args()
    r = split(a.timeline)
    r['share']['issues 22-25'] += a.extra; r['share']['the rest'] -= a.extra
    for k, v in r['busy'].items(): print(f"{k}: busy {v:.0f} s")
    for k, v in r['share'].items():
        print(f"{k}: {v:.0f} worker-s; alone about {v / 2 + a.startup:.0f} s on two workers")
