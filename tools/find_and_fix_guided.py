"""The find_and_fix tutorial's guided model at other seeds and epochs: clean accuracy and clean 7s.

    python tools/find_and_fix_guided.py EPOCHS SEED   # e.g. 4 42; run the tutorial once first, it makes the data

It replays the tutorial's cells (CAMGuidance, boxes on 50% of the marked training pictures, batch 32, one torch thread)
on the data the tutorial leaves in the temporary folder."""
import sys, tempfile
from pathlib import Path
import torch
from fastai.vision.all import set_seed
from fastcam.all import cam_learner, digits_dls
from fastcam.guidance import CAMGuidance, guided_dls

def main(epochs: int, seed: int, marked: str = '7'):
    torch.set_num_threads(1)
    root = Path(tempfile.gettempdir())/'fastcam_find_and_fix'
    clean_dls = digits_dls(root/'clean', bs=32)
    set_seed(seed)
    guided = cam_learner(guided_dls(root/'marked', box_fraction=0.5, seed=seed, bs=32), ps=0.1, cbs=CAMGuidance())
    with guided.no_bar(), guided.no_logging(): guided.fit_one_cycle(epochs, 1e-2)
    res = guided.cam_dl(clean_dls.valid, cls='target', progress=False)
    labels, predicted = res.targets[:, 0], res.logits.argmax(1)
    right = (predicted == labels).float()
    sevens = labels == clean_dls.vocab.o2i[marked]
    print(f"epochs {epochs}, seed {seed}: clean accuracy {right.mean().item():.4f}, "
          f"clean {marked}s {right[sevens].mean().item():.4f}")

if __name__ == '__main__': main(int(sys.argv[1]), int(sys.argv[2]))
