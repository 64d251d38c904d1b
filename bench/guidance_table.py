"""The table of guidance losses on the shortcut task (nbs/13_guidance.ipynb cites it): one seeded `fit_one_cycle` per row.

    python bench/guidance_table.py [--rows ROW ...] [--n-train 2000] [--n-valid 400] [--epochs 5] [--threads 2]
        [--seed 42]

A ROW is `none`, `clean` or `LOSS:FRACTION` (e.g. `counterfactual:0.5`, `energy:1.0`, `rrr:0.1`), optionally with
`:WEIGHT`. Every row trains `cam_learner(..., ps=0.1)` for `--epochs` with `fit_one_cycle(epochs, 1e-2)`, seed 42
(`--seed`), on the shortcut data (`mark_digits`: a yellow square on every training 7, validation clean), with
`CAMGuidance` on `guided_dls(path, fraction)` for the guided rows; `none` trains on the marked data without guidance, `clean` on the
data without the mark. Every row is judged on the clean validation set: accuracy, accuracy on the 7s, and the energy
in box of the 7s' CAM of class 7 (`energy_in_box`, the box of the digit's ink). Prints one line per row as it ends;
run one row per process under the CPU lock to keep each hold of the lock short."""
import argparse, json, tempfile, time
from pathlib import Path
import torch
from fastai.vision.all import set_seed
from fastcam.data import make_digits, mark_digits, digits_dls, digits_boxes
from fastcam.learner import cam_learner
from fastcam.guidance import CAMGuidance, guided_dls
from fastcam.metrics import energy_in_box

MARKED = '7'

def judge(learn, clean) -> dict:
    "Accuracy, accuracy on the 7s and energy in box of the 7s' maps of class 7, on the clean validation set."
    res = learn.cam_dl(clean.valid, cls='target', progress=False)
    labels, predicted = res.targets[:, 0], res.logits.argmax(1)
    sevens = labels == clean.vocab.o2i[MARKED]
    energy = energy_in_box(res.maps, digits_boxes(clean), 64, reduce=False)
    right = (predicted == labels).float()
    return {'clean accuracy': right.mean().item(), 'clean 7s': right[sevens].mean().item(),
            'energy in box, 7s': energy[sevens].nanmean().item()}

def row(spec: str, root: Path, epochs: int, bs: int = 64, seed: int = 42) -> dict:
    "Train the row `spec` and judge it."
    set_seed(seed)
    if spec in ('none', 'clean'):
        dls, cbs = digits_dls(root/('marked' if spec == 'none' else 'clean'), bs=bs), []
    else:
        loss, fraction, *weight = spec.split(':')
        dls = guided_dls(root/'marked', float(fraction), seed=seed, bs=bs)
        cbs = [CAMGuidance(loss, **({'weight': float(weight[0])} if weight else {}))]  # else the callback's default
    learn = cam_learner(dls, ps=0.1, cbs=cbs)
    start = time.perf_counter()
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(epochs, 1e-2)
    seconds = time.perf_counter() - start
    out = {'row': spec, 'epochs': epochs, 'seed': seed, 'threads': torch.get_num_threads(),
           **judge(learn, digits_dls(root/'clean', bs=bs)), 'fit s': round(seconds)}
    if cbs: out['last guidance loss'] = cbs[0].epoch_loss
    return out

def main():
    p = argparse.ArgumentParser()
    p.add_argument('--rows', nargs='+', default=['none', 'clean', 'energy:0.5', 'energy:1.0', 'counterfactual:0.1',
                                                 'counterfactual:0.2', 'counterfactual:0.5'])
    p.add_argument('--n-train', type=int, default=2000)
    p.add_argument('--n-valid', type=int, default=400)
    p.add_argument('--epochs', type=int, default=5)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--seed', type=int, default=42)
    p.add_argument('--path', default=str(Path(tempfile.gettempdir())/'fastcam_guidance_table'))
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    root = Path(a.path)/f"{a.n_train}_{a.n_valid}"
    make_digits(root/'clean', n_train=a.n_train, n_valid=a.n_valid)
    mark_digits(root/'clean', root/'marked', MARKED, splits=('train',))
    for spec in a.rows:
        out = row(spec, root, a.epochs, seed=a.seed)
        print('ROW', json.dumps(out), flush=True)
        merge(out, a)

SECTION = 'guidance_table: guidance losses on the shortcut task'
HEADER = ['row', 'seed', 'threads', 'epochs', 'clean accuracy', 'clean 7s', 'energy in box, 7s', 'fit s']

def merge(out: dict, a):
    "Add the row `out` to the table in bench/results.md, replacing the row of the same spec, seed, threads and epochs."
    from filelock import FileLock
    from results import record, sections
    with FileLock(str(Path(tempfile.gettempdir())/'fastcam_results.lock')):  # rows finish in several processes
        rows = {}
        for line in sections().get(SECTION, '').splitlines():
            cells = [c.strip() for c in line.strip().strip('|').split('|')]
            if line.startswith('| ') and cells != HEADER: rows[tuple(cells[:4])] = cells
        new = [out['row'], out['seed'], out['threads'], out['epochs'], f"{out['clean accuracy']:.1%}",
               f"{out['clean 7s']:.1%}", f"{out['energy in box, 7s']:.2f}", out['fit s']]
        rows[tuple(str(v) for v in new[:4])] = new
        record(SECTION, HEADER, sorted(rows.values(), key=lambda r: (str(r[0]), str(r[1]))), threads=a.threads,
               notes=f"`mark_digits`: a yellow square on every training 7, validation clean; {a.n_train} / {a.n_valid} "
                     f"pictures, `cam_learner(dls, ps=0.1)`, `fit_one_cycle(epochs, 1e-2)`, batch 64. A row is `none` "
                     f"(the marked data, no guidance), `clean` (data without the mark) or `LOSS:BOXES[:WEIGHT]` "
                     f"(`CAMGuidance(LOSS, weight=WEIGHT)` on `guided_dls(path, BOXES)`; its default weight if none). "
                     f"Judged on the clean validation pictures. Command: `python bench/guidance_table.py --threads 1 "
                     f"--seed SEED --rows ROW ...` (one process per core; each row is merged into this table).")

if __name__ == '__main__': main()
