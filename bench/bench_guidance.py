"""What `CAMGuidance` adds to a training step, at 50% boxes, on the demo task (CPU).

    python bench/bench_guidance.py [--repeats 3] [--batches 12] [--bs 64] [--threads 2] [--path DIR]

Makes the digits task with `make_digits` (cached in --path) and `guided_dls(path, box_fraction=0.5)`, then fits
`cam_learner` for one epoch (`--batches` training batches of `--bs`) with each contender, seeded alike, in interleaved
order: the plain step (only the annotation dropped from the batch), and `CAMGuidance` with each loss. The time of a
training step is from `before_batch` to `after_batch` (forward, loss, guidance, backward, optimizer step), the median
over the steps of all repeats, the first two steps of each fit left out. Prints the ratio of each guided step to the
plain one (target for the default, the counterfactual: <= 2x) and records the table in bench/results.md."""
import argparse, statistics, time
from pathlib import Path
import torch
from fastai.callback.core import Callback
from fastai.vision.all import set_seed
from fastcam.data import make_digits
from fastcam.learner import cam_learner
from fastcam.guidance import CAMGuidance, guided_dls
from results import record

class DropAnnotation(Callback):
    "The plain step: the annotation leaves the batch, nothing else happens."
    order = 5
    def before_batch(self): self.learn.yb = self.learn.yb[:-1]

class StepTimer(Callback):
    "Seconds of each training step, from `before_batch` to `after_batch`."
    order = -20  # before every other callback's before_batch; its after_batch is timed after all of theirs
    def before_fit(self): self.times = []
    def before_batch(self):
        if self.training: self.start = time.perf_counter()
    def after_batch(self):
        if self.training: self.times.append(time.perf_counter() - self.start)

def steps(dls, contender: str) -> list:
    "Step times of one seeded epoch with `contender` ('plain' or a guidance loss)."
    set_seed(0)
    timer = StepTimer()
    cbs = [timer, DropAnnotation() if contender == 'plain' else CAMGuidance(contender)]
    learn = cam_learner(dls, ps=0.1)
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(1, 1e-2, cbs=cbs)
    return timer.times[2:]

def main():
    p = argparse.ArgumentParser()
    p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--batches', type=int, default=12)
    p.add_argument('--bs', type=int, default=64)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--contenders', nargs='+', default=['plain', 'counterfactual', 'energy', 'rrr'])
    p.add_argument('--path', default=str(Path.home()/'.cache'/'fastcam'/'bench_guidance'))
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    path = Path(a.path)
    make_digits(path, n_train=a.batches * a.bs, n_valid=a.bs)
    dls = guided_dls(path, box_fraction=0.5, bs=a.bs)
    times = {c: [] for c in a.contenders}
    for r in range(a.repeats):
        for c in (a.contenders if r % 2 == 0 else a.contenders[::-1]): times[c] += steps(dls, c)
    plain = statistics.median(times['plain'])
    rows = []
    for c in a.contenders:
        ms = statistics.median(times[c]) * 1000
        rows.append([c if c == 'plain' else f"CAMGuidance('{c}')", ms, ms / plain / 1000])
        print(f"{rows[-1][0]:<32} {ms:8.1f} ms / step   {rows[-1][2]:.2f}x plain")
    record('bench_guidance: a guided training step against a plain one, 50% boxes',
           ['step', 'ms / step', '/ plain step'], rows, threads=a.threads,
           notes=f"`python bench/bench_guidance.py` (--repeats {a.repeats} --batches {a.batches} --bs {a.bs}): "
                 f"cam_learner (resnet18 cut after layer2, 64 px, 8x8 maps), guided_dls(box_fraction=0.5), "
                 f"fit_one_cycle(1); a step from before_batch to after_batch, median over {len(times['plain'])} steps "
                 f"per contender, fits interleaved. Target for the default (counterfactual): <= 2x.")

if __name__ == '__main__': main()
