"""What `cam_learner` costs (or gains) against `vision_learner`, trained side by side on the digits task.

    python bench/bench_learner.py [--n-train 2000] [--n-valid 400] [--epochs 4] [--threads 2]

Three learners on the same data (`make_digits`, 64 px), each from random weights (`pretrained=False`: no download),
seed 42, `fit_one_cycle(epochs, 1e-2)`, batch 64, in one process: `vision_learner` as fastai builds it (concat pooling,
two-layer head), `vision_learner` with the head CAM needs (`concat_pool=False, lin_ftrs=[]`), and `cam_learner` (that
head, the body cut after `layer2`). Judged on the validation set: accuracy, and the pointing game of Grad-CAM at each
model's default layer (the body's output), predicted class; plus the map size and the fit time as a ratio to
`cam_learner`'s. The table goes to bench/results.md (bench/results.py)."""
import argparse, tempfile, time
from pathlib import Path
import torch

def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--n-train', type=int, default=2000)
    parser.add_argument('--n-valid', type=int, default=400)
    parser.add_argument('--epochs', type=int, default=4)
    parser.add_argument('--threads', type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from fastai.vision.all import set_seed, vision_learner, resnet18
    from fastcam.data import make_digits, digits_dls, digits_boxes
    from fastcam.learner import cam_learner
    from fastcam.metrics import pointing_game
    from fastcam.methods import GradCAM
    builders = {
        "vision_learner(dls, resnet18) (fastai's head)": lambda dls: vision_learner(dls, resnet18, pretrained=False),
        'vision_learner(..., concat_pool=False, lin_ftrs=[])':
            lambda dls: vision_learner(dls, resnet18, pretrained=False, concat_pool=False, lin_ftrs=[]),
        'cam_learner(dls) (cut after layer2)': lambda dls: cam_learner(dls),
    }
    path = Path(tempfile.gettempdir())/'fastcam_bench_learner'/f"{args.n_train}_{args.n_valid}"
    make_digits(path, n_train=args.n_train, n_valid=args.n_valid)
    found = {}
    for name, build in builders.items():
        set_seed(42)
        dls = digits_dls(path, bs=64)
        learn = build(dls)
        start = time.perf_counter()
        with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(args.epochs, 1e-2)
        seconds = time.perf_counter() - start
        res = learn.cam_dl(method=GradCAM, progress=False)  # at the default layer, predicted class
        accuracy = (res.logits.argmax(1) == torch.tensor([int(y) for _, y in dls.valid_ds])).float().mean().item()
        found[name] = (accuracy, pointing_game(res.maps, digits_boxes(dls), 64), tuple(res.maps.shape[-2:]), seconds)
        print(name, found[name], flush=True)
    reference = found['cam_learner(dls) (cut after layer2)'][3]
    rows = [[name, acc, pg, f"{hw[0]}x{hw[1]}", s, s / reference] for name, (acc, pg, hw, s) in found.items()]
    from results import record
    record('bench_learner: cam_learner against vision_learner', ['learner', 'accuracy', 'pointing game (Grad-CAM)',
           'map', 'fit s', '/ cam_learner fit'], rows, threads=args.threads,
           notes=f"The digits task, {args.n_train} / {args.n_valid} pictures of 64 px, resnet18 from random weights, "
                 f"seed 42, fit_one_cycle({args.epochs}, 1e-2), batch 64; the pointing game of the predicted class's "
                 f"Grad-CAM at the body's output (the box of the digit's ink). "
                 f"Command: `python bench/bench_learner.py --epochs {args.epochs} --threads {args.threads}`.")

if __name__ == '__main__': main()
