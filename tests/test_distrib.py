"""`store_maps` and `CAMCallback` inside fastai's own distributed engine, `learn.distrib_ctx()` (accelerate's
`Accelerator`, `DistributedDataParallel`, `DistributedDL`), in two processes launched the way fastai documents:
`python -m torch.distributed.run --nproc_per_node 2` (torchrun). fastai and accelerate set everything up, and the
results are compared with one process here, on the same data and the same weights:

- `store_maps` inside the context before any fit (the initial weights), and from a callback at the end of an epoch
  (the model wrapped in `DistributedDataParallel`, `learn.dls.valid` a `DistributedDL`; Grad-CAM, top-2), returns the
  store on rank 0 only and writes folders byte-equal to a single-process `store_maps` with the same weights;
- the fit really is distributed: each rank trains on half the batches, and both end with the same weights, which are
  not the initial ones;
- an exported learner in `DistributedDataParallel` (as the engine leaves a model during a fit), in the process group
  the context leaves up: `store_maps` and `fastcam maps` (the CLI) return and write on rank 0 only (an audit hook in
  each process records every file it writes in their folders), files byte-equal to one process's;
- `CAMCallback` in a second fit records, and writes its pictures, on rank 0 only (rank 1 counts the epoch and keeps
  nothing), and rank 0's maps before and after the epoch equal, bit for bit, what `learn.cam` gives here with the
  weights rank 0 had then (saved by the workers). In `before_fit` fastai's `DistributedTrainer` has already put the
  loaders in `DistributedDL`s, whose `new` and `decode` fail; `learn.cam_batch` and `learn.decode_batch_images` use the
  loaders inside them (this test found that).

On a CPU, two things of fastai's engine need a GPU (fastai 2.8.12): `DistributedDL._broadcast` (rank 0 sends its
shuffled order) moves its tensor to CUDA for nccl, and `sync_bn=True` (the default) converts BatchNorm to
`SyncBatchNorm`, which runs on GPUs only. So the fits use `distrib_ctx(sync_bn=False)`, and only when CUDA is
unavailable the workers replace `_broadcast` by the same broadcast of a CPU tensor (gloo takes CPU tensors) and pass
accelerate `cpu=True` (accelerate 1.16 otherwise takes the run for one process and leaves the model unwrapped). With
two GPUs or more the workers run on them, unpatched (not yet run on such a machine); with one, the workers see none
and take the CPU path. One torchrun launch, one test function: about 30 s on 2 cores."""
import os, signal, socket, subprocess, sys, textwrap
from pathlib import Path
import matplotlib
import pytest
import torch
matplotlib.use('Agg')
from fastai.vision.all import set_seed
from fastcam.all import make_digits, digits_dls, cam_learner, store_maps, MapStore

N_TRAIN, N_VALID, BS = 64, 37, 8  # validation: 4 full batches and one of 5, not a multiple of world size x batch size
ITEMS = [36, 0, 17]  # the callback's items; the first one sits in the short last batch
GPUS = torch.cuda.device_count() >= 2  # two GPUs: nccl, unpatched; else gloo on the CPU
DEVICE = 'cuda:0' if GPUS else 'cpu'  # the single-process reference runs where rank 0 runs
TIMEOUT = 300  # seconds for the whole torchrun launch; then its process group is killed

def _files(path: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]

@pytest.fixture(scope='module')
def data(tmp_path_factory):
    """The digits task, the initial weights (seeded, random) that every process starts from, a learner with them
    exported, and a folder of the validation pictures for `fastcam maps`."""
    path = tmp_path_factory.mktemp('digits')
    make_digits(path/'data', n_train=N_TRAIN, n_valid=N_VALID)
    set_seed(0)
    learn = cam_learner(digits_dls(path/'data', bs=BS, device='cpu'))
    torch.save(learn.model.state_dict(), path/'init.pth')
    learn.export(path/'export.pkl')
    (path/'valid').mkdir()
    for f in learn.dls.valid_ds.items.fname: (path/'valid'/Path(f).name).symlink_to(path/'data'/f)
    return path

WORKER = textwrap.dedent('''
    import os, sys, traceback
    from pathlib import Path
    import matplotlib
    matplotlib.use('Agg')
    import torch, torch.distributed as dist
    import fastai.distributed
    from fastai.callback.core import Callback
    from torch.nn.parallel import DistributedDataParallel
    from fastai.learner import load_learner
    from fastai.torch_core import rank_distrib, num_distrib
    from fastcam.all import digits_dls, cam_learner, store_maps, CAMCallback, unwrap_model
    from fastcam.cli import main

    torch.set_num_threads(1)
    root, bs, items = Path(sys.argv[1]), int(sys.argv[2]), [int(i) for i in sys.argv[3].split(',')]
    rank = rank_distrib()
    touched = []
    def audit(event, args):  # every file this process opens for writing, makes, renames or deletes in out_api, out_cli
        if event in ('open', 'os.mkdir', 'os.rename', 'os.replace', 'os.remove', 'os.truncate') and args:
            target, mode, flags = str(args[0]), str(args[1]) if len(args) > 1 else '', args[2] if len(args) > 2 else 0
            writes = event != 'open' or any(c in mode for c in 'wax+') or (
                isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR))
            if writes and ('out_api' in target or 'out_cli' in target): touched.append((event, target))
    sys.addaudithook(audit)
    if torch.cuda.is_available():
        device, accelerator = torch.device('cuda', int(os.environ['LOCAL_RANK'])), {}
        torch.cuda.set_device(device)
    else:
        # fastai's DistributedDL._broadcast calls .cuda() on the tensor it broadcasts (nccl takes only CUDA tensors);
        # gloo takes CPU tensors, so without CUDA this test runs the same broadcast on a CPU tensor.
        def _broadcast(self, t, rank):
            t = torch.LongTensor(t)
            dist.broadcast(t, rank)
            return t.tolist()
        fastai.distributed.DistributedDL._broadcast = _broadcast
        # without cpu=True accelerate finds no accelerator, takes the run for a single process and leaves the model
        # unwrapped; fastai's DistributedTrainer then fails ('Sequential' object has no attribute 'device')
        device, accelerator = torch.device('cpu'), dict(cpu=True)
    weights = lambda: {k: v.cpu().clone() for k, v in unwrap_model(learn.model).state_dict().items()}

    class Probe(Callback):
        "At the end of the epoch, as the engine leaves it: what wraps what, the batches trained; then store_maps."
        def before_fit(self): self.batches = 0
        def after_batch(self):
            if self.training: self.batches += 1
        def after_epoch(self):
            self.seen = dict(model=type(self.learn.model).__name__, valid=type(self.learn.dls.valid).__name__,
                             batches=self.batches)
            self.store = store_maps(self.learn, root/'during', method='gradcam', topk=2, progress=False)

    learn = cam_learner(digits_dls(root/'data', bs=bs, device=device), path=root/f'rank{rank}')
    learn.model.load_state_dict(torch.load(root/'init.pth'))
    res = {}
    with learn.distrib_ctx(sync_bn=False, **accelerator):
        res['group'] = dict(initialized=dist.is_initialized(), world=num_distrib(), backend=dist.get_backend())
        res['before'] = store_maps(learn, root/'before', progress=False) is not None
        probe = Probe()
        learn.fit(1, 1e-2, cbs=probe)
        res.update(during=probe.store is not None, seen=probe.seen, fit1=weights())
        cb = CAMCallback(items=items)
        try:
            learn.fit(1, 1e-2, cbs=cb)
            res['cb_error'] = res['cb_traceback'] = None
        except Exception as e: res.update(cb_error=f'{type(e).__name__}: {e}', cb_traceback=traceback.format_exc())
        res.update(history=cb.history, info=cb._info, epochs=cb.epochs_done, fit2=weights())
    if not torch.cuda.is_available():  # the process group is gloo's: a CPU model in DDP
        # distrib_ctx leaves the group that accelerate started up; `fastcam maps` finds it and does not start its own
        exported = load_learner(root/'export.pkl', cpu=True)
        exported.model = DistributedDataParallel(exported.model)
        files = sorted((root/'valid').iterdir())
        res['api'] = store_maps(exported, root/'out_api', dl=exported.dls.test_dl(files, bs=bs), progress=False)
        res['api'] = res['api'] is not None
        res['cli'] = main(['maps', str(root/'valid'), '--learner', str(root/'export.pkl'), '-o', str(root/'out_cli'),
                           '--bs', str(bs), '--topk', '3', '--no-progress'])
    res['touched'] = touched
    torch.save(res, root/f'rank{rank}.pt')
''')

def _torchrun(root: Path) -> tuple:
    "Run the worker in two processes under torchrun; its return code and a log: each rank's stderr, then torchrun's."
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    if not GPUS: env['CUDA_VISIBLE_DEVICES'] = ''  # one GPU cannot hold two nccl ranks: the CPU path
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nnodes', '1', '--nproc_per_node', '2',
           '--master_addr', '127.0.0.1', '--master_port', str(_free_port()),
           '--log-dir', str(root/'logs'), '--redirects', '3',  # each worker's stdout and stderr to files of its own
           str(root/'worker.py'), str(root), str(BS), ','.join(map(str, ITEMS))]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try: out, _ = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.terminate()  # torchrun stops its workers on SIGTERM (they run in sessions of their own)
        try: out, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the session this test started
            out, _ = proc.communicate()
        out += f'\n(stopped after {TIMEOUT} s)'
    logs = [f'--- rank {p.parent.name} stderr:\n{p.read_text()[-4000:]}'
            for p in sorted((root/'logs').glob('*/attempt_*/*/stderr.log'))]
    return proc.returncode, '\n'.join([*logs, f'--- torchrun:\n{out[-2000:]}'])

def test_distrib_ctx_store_maps_and_callback_equal_one_process(data, tmp_path):
    for name in ('data', 'init.pth', 'export.pkl', 'valid'): (tmp_path/name).symlink_to(data/name)
    (tmp_path/'worker.py').write_text(WORKER)
    rc, log = _torchrun(tmp_path)
    assert rc == 0, f"torchrun failed (return code {rc})\n{log}"
    r0, r1 = (torch.load(tmp_path/f'rank{r}.pt', weights_only=False) for r in range(2))

    # the engine: a process group of two, the model in DDP and the data in DistributedDL, half the batches each
    assert r0['group'] == r1['group'] == dict(initialized=True, world=2, backend='nccl' if GPUS else 'gloo'), log
    learn = cam_learner(digits_dls(tmp_path/'data', bs=BS, device=DEVICE), path=tmp_path/'single')  # the same names
    for r in (r0, r1):
        assert r['seen'] == dict(model='DistributedDataParallel', valid='DistributedDL',
                                 batches=len(learn.dls.train) // 2), r['seen']
    init = torch.load(data/'init.pth')
    for fit in ('fit1', 'fit2'):
        assert [k for k in init if not torch.equal(r0[fit][k], r1[fit][k])] == [], f"the ranks differ after {fit}"
    assert any(not torch.equal(r0['fit1'][k], init[k]) for k in init), "the fit changed no weight"

    # store_maps: the store on rank 0 only; folders byte-equal to one process's with the same weights
    assert (r0['before'], r1['before'], r0['during'], r1['during']) == (True, False, True, False)
    learn.model.load_state_dict(init)
    store_maps(learn, tmp_path/'single_before', progress=False)
    assert _files(tmp_path/'before') == _files(tmp_path/'single_before'), "maps before the fit differ"
    learn.model.load_state_dict(r0['fit1'])
    store_maps(learn, tmp_path/'single_during', method='gradcam', topk=2, progress=False)
    assert _files(tmp_path/'during') == _files(tmp_path/'single_during'), "maps stored during the fit differ"
    during = MapStore(tmp_path/'during')
    assert during.maps.shape == (N_VALID, 2, 8, 8)
    assert during.names == [str(tmp_path/'data'/f) for f in learn.dls.valid_ds.items.fname]

    # CAMCallback
    assert (r0['cb_error'], r1['cb_error']) == (None, None), f"{r0['cb_traceback']}\n{r1['cb_traceback']}"
    labels = [int(learn.dls.valid_ds[i][1]) for i in ITEMS]
    assert sorted(r0['history']) == [0, 1] and r0['epochs'] == 1
    learn.model.load_state_dict(r0['fit1'])  # the weights the second fit started from
    assert torch.equal(r0['history'][0], learn.cam(ITEMS, cls=labels).cpu()), "maps before the epoch differ"
    learn.model.load_state_dict(r0['fit2'])
    assert torch.equal(r0['history'][1], learn.cam(ITEMS, cls=labels).cpu()), "maps after the epoch differ"
    assert not torch.equal(r0['history'][0], r0['history'][1])
    assert r0['info'][1][0].tolist() == labels
    assert sorted(p.name for p in (tmp_path/'rank0'/'cams').iterdir()) == ['epoch_000.png', 'epoch_001.png']
    assert (r1['history'], r1['info'], r1['epochs']) == ({}, {}, 1)
    assert not (tmp_path/'rank1').exists(), "rank 1 wrote files"

    # an exported learner in DDP, through the API and `fastcam maps`: rank 0 alone writes, the files of one process
    if GPUS: return  # the workers ran on the GPUs (nccl): this part is the CPU's (gloo)
    assert (r0['api'], r1['api'], r0['cli'], r1['cli']) == (True, False, 0, 0)
    assert r1['touched'] == [], f"rank 1 wrote into the output folders: {r1['touched']}"
    assert any('maps.npy' in t for _, t in r0['touched']), r0['touched']
    from fastai.learner import load_learner
    exported = load_learner(data/'export.pkl', cpu=True)
    files = sorted((tmp_path/'valid').iterdir())  # the names the workers saw
    store_maps(exported, tmp_path/'single_api', dl=exported.dls.test_dl(files, bs=BS), progress=False)
    store_maps(exported, tmp_path/'single_cli', dl=exported.dls.test_dl(files, bs=BS), topk=3, progress=False)
    assert _files(tmp_path/'out_api') == _files(tmp_path/'single_api')
    assert _files(tmp_path/'out_cli') == _files(tmp_path/'single_cli')
    # and those are the maps of one plain call over all the items, each item once, in order
    two = MapStore(tmp_path/'out_api')
    assert two.names == [str(f) for f in files]
    assert torch.equal(two.result().maps, exported.cam(files))
    assert len(two) == N_VALID and MapStore(tmp_path/'out_cli').maps.shape == (N_VALID, 3, 8, 8)
