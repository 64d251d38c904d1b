"""The segmentation tutorial's U-Net with fewer pictures or epochs: foreground accuracy and the decoder block's energy
ratio (the tutorial's two checks), to choose a shorter training for the suite.

    python tools/segmentation_variants.py N_TRAIN EPOCHS [SEED] [BS]   # the tutorial: 800 5 42 16

It replays the tutorial's cells with one torch thread (the suite's setting) in a fresh temporary folder."""
import json, sys, time
from pathlib import Path
import torch

ROOT = Path(__file__).resolve().parents[1]

def main(n_train: int, epochs: int, seed: int = 42, bs: int = 16):
    torch.set_num_threads(1)
    cells = json.loads((ROOT/'nbs/tutorials/segmentation.ipynb').read_text())['cells']
    src = lambda i: ''.join(cells[i]['source'])
    code = src(2) + '\n' + src(5).replace('n_train=800', f'n_train={n_train}').replace('dls.show_batch', '#').replace('bs=16', f'bs={bs}')
    code = code.replace("Path(tempfile.gettempdir())/'fastcam_segmentation'", 'Path(tempfile.mkdtemp())')
    code += '\n' + src(7).replace('set_seed(42)', f'set_seed({seed})').replace('fit_one_cycle(5,', f'fit_one_cycle({epochs},')
    code = code.replace('learn.fit_one_cycle', 'start = time.perf_counter()\nwith learn.no_bar(), learn.no_logging(): learn.fit_one_cycle')
    code += '\nfit_s = time.perf_counter() - start\nvalid = df[df.is_valid].reset_index(drop=True)\n' + src(15)
    env = {'time': time}
    exec(code, env)
    print(f"n_train {n_train}, epochs {epochs}, seed {seed}, bs {bs}: fit {env['fit_s']:.0f} s, foreground_acc "
          f"{env['learn'].recorder.values[-1][2]:.3f}, decoder ratio "
          f"{env['table'].loc['decoder block learn.model[4]', 'energy per pixel in box / outside']:.2f}, encoder "
          f"{env['table'].loc['encoder learn.model[0]', 'energy per pixel in box / outside']:.2f}")

if __name__ == '__main__': main(*map(int, sys.argv[1:]))
