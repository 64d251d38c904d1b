"""Heavier checks of `store_maps` than its notebook runs (nbs/11_store.ipynb): two real processes (gloo, CPU) give the
single-process maps byte for byte and only rank 0 touches the folder, through the API and through `fastcam maps`; a job
killed half-way resumes to the same files; peak memory stays flat when the dataset grows tenfold."""
import json, os, signal, socket, subprocess, sys, textwrap
from pathlib import Path
import matplotlib
import pytest
import torch
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

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]

WORKER = textwrap.dedent('''
    import os, sys
    from pathlib import Path
    import torch, torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel
    from fastai.learner import load_learner
    from fastcam.store import store_maps
    from fastcam.cli import main

    torch.set_num_threads(1)
    root, rank = Path(sys.argv[1]), int(os.environ['RANK'])
    touched = []
    def audit(event, args):  # every file this process opens for writing, makes, renames or deletes in the outputs
        if event in ('open', 'os.mkdir', 'os.rename', 'os.replace', 'os.remove', 'os.truncate') and args:
            target, mode, flags = str(args[0]), str(args[1]) if len(args) > 1 else '', args[2] if len(args) > 2 else 0
            writes = event != 'open' or any(c in mode for c in 'wax+') or (
                isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR))
            if writes and ('out_api' in target or 'out_cli' in target): touched.append((event, target))
    sys.addaudithook(audit)
    dist.init_process_group('gloo')
    learn = load_learner(root/'export.pkl', cpu=True)
    learn.model = DistributedDataParallel(learn.model)  # as learn.distrib_ctx() leaves it during a fit
    files = sorted((root/'valid').iterdir())
    store = store_maps(learn, root/'out_api', dl=learn.dls.test_dl(files, bs=8), progress=False)
    assert (store is None) == (rank != 0)
    assert main(['maps', str(root/'valid'), '--learner', str(root/'export.pkl'), '-o', str(root/'out_cli'),
                 '--bs', '8', '--topk', '3', '--no-progress']) == 0
    (root/f'touched{rank}.txt').write_text('\\n'.join(f'{e} {t}' for e, t in touched))
    dist.destroy_process_group()
''')

def test_two_processes_equal_one_and_only_rank_0_writes(data, tmp_path):
    (tmp_path/'worker.py').write_text(WORKER)
    for name in ('export.pkl', 'valid'): (tmp_path/name).symlink_to(data/name)
    port = _free_port()
    procs = [subprocess.Popen([sys.executable, str(tmp_path/'worker.py'), str(tmp_path)],
                              env=_env(RANK=str(r), LOCAL_RANK=str(r), WORLD_SIZE='2', MASTER_ADDR='127.0.0.1',
                                       MASTER_PORT=str(port)),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for r in range(2)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), '\n'.join(outputs)[-4000:]
    assert (tmp_path/'touched1.txt').read_text() == '', "rank 1 wrote into the output folder"
    assert 'maps.npy' in (tmp_path/'touched0.txt').read_text()

    from fastai.learner import load_learner
    learn = load_learner(data/'export.pkl', cpu=True)
    files = sorted((tmp_path/'valid').iterdir())  # the names the workers saw
    store_maps(learn, tmp_path/'single_api', dl=learn.dls.test_dl(files, bs=BS), progress=False)
    store_maps(learn, tmp_path/'single_cli', dl=learn.dls.test_dl(files, bs=BS), topk=3, progress=False)
    assert _files(tmp_path/'out_api') == _files(tmp_path/'single_api')
    assert _files(tmp_path/'out_cli') == _files(tmp_path/'single_cli')
    # and those are the maps of one plain call over all the items, each item once, in order
    two = MapStore(tmp_path/'out_api')
    assert two.names == [str(f) for f in files]
    assert torch.equal(two.result().maps, learn.cam(files))
    assert len(two) == N_VALID and MapStore(tmp_path/'out_cli').maps.shape == (N_VALID, 3, 8, 8)

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
