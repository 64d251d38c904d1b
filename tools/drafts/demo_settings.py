"""Draft: the demo's accuracy and pointing game with fewer epochs (issue 15: the demo <= 90 s on 2 quiet cores).

    python tools/drafts/demo_settings.py EPOCHS LR THREADS"""
import sys, tempfile, torch
from pathlib import Path
from fastcam.cli import run_demo
epochs, lr, threads = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
with tempfile.TemporaryDirectory() as d:
    f = run_demo(Path(d), out=Path(d)/'demo.png', epochs=epochs, lr=lr, report_items=0, log=lambda *a: None)
print('RESULT', epochs, lr, threads, {k: round(v, 4) for k, v in f.items() if isinstance(v, float)}, flush=True)
