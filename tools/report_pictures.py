"""How many pictures `cam_report` puts through the model, and its seconds, for every method on a small trained digits
model: to compare two versions of fastcam side by side (PYTHONPATH=<other checkout> python tools/report_pictures.py).

    python tools/report_pictures.py [--items 16] [--steps 8]"""
import argparse, tempfile, time
from pathlib import Path
import torch
from fastai.vision.all import set_seed
from fastcam.all import make_digits, digits_dls, digits_boxes, cam_learner
import fastcam

def main(items: int, steps: int):
    torch.set_num_threads(1)
    path = Path(tempfile.mkdtemp())
    make_digits(path, n_train=256, n_valid=items)
    set_seed(0)
    learn = cam_learner(digits_dls(path, bs=64), ps=0.1)
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(1, 1e-2)
    pictures = []
    hook = learn.model.register_forward_hook(lambda m, i, o: pictures.append(len(i[0])))
    start = time.perf_counter()
    report = learn.cam_report(boxes=digits_boxes(learn.dls), n_items=items, steps=steps, progress=False)
    seconds = time.perf_counter() - start
    hook.remove()
    print(f"{Path(fastcam.__file__).parent}: {len(report)} methods, {items} items, steps {steps}: "
          f"{sum(pictures)} pictures through the model, {seconds:.1f} s")
    return report

if __name__ == '__main__':
    p = argparse.ArgumentParser()
    p.add_argument('--items', type=int, default=16); p.add_argument('--steps', type=int, default=8)
    a = p.parse_args()
    main(a.items, a.steps)
