"""Heavier checks of `store_maps` than its notebook runs (nbs/11_store.ipynb): a job killed half-way resumes to the
same files; peak memory stays flat when the dataset grows tenfold. Two real processes (gloo, CPU), through the API and
through `fastcam maps`, giving the single-process files byte for byte with only rank 0 writing, are tested inside
fastai's `learn.distrib_ctx()` under torchrun (tests/test_distrib.py), in the launch that tests the rest of it."""
import json, os, signal, subprocess, sys, textwrap
from pathlib import Path
import matplotlib
import pytest
matplotlib.use('Agg')
from fastai.vision.all import set_seed
from fastcam.data import make_digits, digits_dls
from fastcam.learner import cam_learner
from fastcam.store import store_maps, MapStore

N_VALID, BS = 37, 8  # 4 full batches and one of 5: not a multiple of world size x batch size

@pytest.fixture(scope='module')
def data(tmp_path_factory):
    "The digits task, an exported learner with random weights, and a folder of the validation pictures."
    path = tmp_path_factory.mktemp('digits')
    make_digits(path/'data', n_train=100, n_valid=N_VALID)
    set_seed(0)
    learn = cam_learner(digits_dls(path/'data', bs=BS))
    learn.export(path/'export.pkl')
    (path/'valid').mkdir()
    for f in learn.dls.valid_ds.items.fname: (path/'valid'/Path(f).name).symlink_to(path/'data'/f)
    return path

def _files(path: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}

def _env(**extra) -> dict:
    return {**os.environ, 'OMP_NUM_THREADS': '1', **extra}

KILLED = textwrap.dedent('''
    import os, signal, sys
    from pathlib import Path
    import torch
    from fastai.learner import load_learner
    from fastcam.methods import cam_method
    from fastcam.store import store_maps

    torch.set_num_threads(1)
    root, out, kill_at = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    learn = load_learner(root/'export.pkl', cpu=True)
    method = cam_method(learn.model, 'gradcam')
    compute, calls = method.compute, []
    def compute_or_die(x, cls=None, topk=None):
        calls.append(len(x))
        if len(calls) == kill_at: os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no finally: a real kill
        return compute(x, cls, topk)
    method.compute = compute_or_die
    store_maps(learn, out, dl=learn.dls.test_dl(sorted((root/'valid').iterdir()), bs=8), method=method,
               checkpoint=float(sys.argv[4]), progress=False)
    print('batches computed:', calls)
''')

def test_killed_half_way_resumes_to_the_same_files(data, tmp_path):
    (tmp_path/'job.py').write_text(KILLED)
    run = lambda kill_at, checkpoint='0': subprocess.run(
        [sys.executable, str(tmp_path/'job.py'), str(data), str(tmp_path/'out'), str(kill_at), checkpoint],
        env=_env(), capture_output=True, text=True, timeout=300)
    killed = run(kill_at=4)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert not (tmp_path/'out'/'complete.json').exists()
    with pytest.raises(ValueError, match='is not complete: 24 of 37 items written'): MapStore(tmp_path/'out')
    resumed = run(kill_at=0)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert 'batches computed: [8, 5]' in resumed.stdout  # only the two batches not written: the 4th died
    from fastai.learner import load_learner
    learn = load_learner(data/'export.pkl', cpu=True)
    store_maps(learn, tmp_path/'straight', dl=learn.dls.test_dl(sorted((data/'valid').iterdir()), bs=BS),
               method='gradcam', progress=False)
    assert _files(tmp_path/'out') == _files(tmp_path/'straight')

BENCH = Path(__file__).parents[1]/'bench'/'bench_store.py'

def peak_memory(n: int, folder: Path) -> dict:
    "Peak RSS while a fresh process writes the maps of `n` items (a tiny CAM model); bench/bench_store.py's child."
    out = subprocess.run([sys.executable, str(BENCH), '--memory-child', str(n), '--out', str(folder)], env=_env(),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])

def test_memory_stays_flat_with_ten_times_the_items(tmp_path):
    small, large = peak_memory(256, tmp_path/'small'), peak_memory(2560, tmp_path/'large')
    print(small, large, f"peak ratio {large['peak_mib'] / small['peak_mib']:.3f}")
    assert large['written_mib'] > 90  # 100 MiB of maps, 10 times the small run's
    assert large['peak_mib'] / small['peak_mib'] < 1.10
    # stricter, since the baseline (torch, fastai) is most of the peak: the growth above it is not the output's size
    grown = (large['peak_mib'] - large['base_mib']) - (small['peak_mib'] - small['base_mib'])
    assert grown < 0.2 * (large['written_mib'] - small['written_mib'])
