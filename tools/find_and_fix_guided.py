"""The find_and_fix tutorial's guided model at other seeds and epochs: clean accuracy and clean 7s.

    python tools/find_and_fix_guided.py EPOCHS SEED [--from-shortcut] [--lr LR] [--fits FOLDER]

It replays the tutorial's cells (CAMGuidance, boxes on 50% of the marked training pictures, batch 32, one torch thread)
on the data the tutorial leaves in the temporary folder (run the tutorial once first). `--from-shortcut` starts from the
tutorial's shortcut model (trained, or replayed from tests/fit_cache.py's cache in `--fits`) instead of random weights."""
import argparse, sys, tempfile, time
from pathlib import Path
import torch
from fastai.vision.all import set_seed
from fastcam.all import cam_learner, digits_dls
from fastcam.guidance import CAMGuidance, guided_dls

ROOT = Path(__file__).resolve().parents[1]

def shortcut_model(root, fits):
    "The tutorial's shortcut model: seed 42, the marked pictures, 3 epochs."
    if fits:
        sys.path.insert(0, str(ROOT/'tests'))
        from fit_cache import FitCache
        FitCache(fits).install()
    set_seed(42)
    learn = cam_learner(digits_dls(root/'marked', bs=32), ps=0.1)
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(3, 1e-2)
    return learn

def main(epochs: int, seed: int, from_shortcut: bool = False, lr: float = 1e-2, fits=None, marked: str = '7'):
    torch.set_num_threads(1)
    root = Path(tempfile.gettempdir())/'fastcam_find_and_fix'
    clean_dls = digits_dls(root/'clean', bs=32)
    start_from = shortcut_model(root, fits) if from_shortcut else None
    set_seed(seed)
    guided = cam_learner(guided_dls(root/'marked', box_fraction=0.5, seed=seed, bs=32), ps=0.1, cbs=CAMGuidance())
    if start_from is not None: guided.model.load_state_dict(start_from.model.state_dict())
    start = time.perf_counter()
    with guided.no_bar(), guided.no_logging(): guided.fit_one_cycle(epochs, lr)
    seconds = time.perf_counter() - start
    res = guided.cam_dl(clean_dls.valid, cls='target', progress=False)
    labels, predicted = res.targets[:, 0], res.logits.argmax(1)
    right = (predicted == labels).float()
    sevens = labels == clean_dls.vocab.o2i[marked]
    print(f"epochs {epochs}, seed {seed}, from shortcut {from_shortcut}, lr {lr}: clean accuracy "
          f"{right.mean().item():.4f}, clean {marked}s {right[sevens].mean().item():.4f} (fit {seconds:.0f} s)")

if __name__ == '__main__':
    p = argparse.ArgumentParser()
    p.add_argument('epochs', type=int); p.add_argument('seed', type=int)
    p.add_argument('--from-shortcut', action='store_true'); p.add_argument('--lr', type=float, default=1e-2)
    p.add_argument('--fits')
    a = p.parse_args()
    main(a.epochs, a.seed, a.from_shortcut, a.lr, a.fits)
