"""Heavier checks of `CAMCallback` than its notebook runs: two real processes of distributed training (gloo, CPU),
and bit-for-bit training with gradient methods inside the body. The notebook (nbs/08_callback.ipynb) has the rest."""
import os, socket, subprocess, sys, textwrap
import matplotlib
import pytest
import torch
matplotlib.use('Agg')
from fastai.vision.all import set_seed
import fastai.callback.schedule  # noqa: F401  (fit_one_cycle)
from fastcam.callback import CAMCallback
from fastcam.data import make_digits, digits_dls
from fastcam.learner import cam_learner

@pytest.fixture(scope='module')
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp('digits')
    make_digits(path, n_train=128, n_valid=32)
    return path

WORKER = textwrap.dedent('''
    import os, sys
    from pathlib import Path
    import matplotlib
    matplotlib.use('Agg')
    import torch, torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel
    from fastai.vision.all import set_seed, Callback
    from fastcam.callback import CAMCallback
    from fastcam.data import digits_dls
    from fastcam.learner import cam_learner

    class DDPWrapper(Callback):
        "Wrap the model in DistributedDataParallel for the fit, as fastai's DistributedTrainer does (order 11)."
        order = 11
        def before_fit(self): self.learn.model = DistributedDataParallel(self.learn.model)
        def after_fit(self): self.learn.model = self.learn.model.module

    torch.set_num_threads(1)
    root, rank = Path(sys.argv[1]), int(os.environ['RANK'])
    dist.init_process_group('gloo', rank=rank, world_size=int(os.environ['WORLD_SIZE']))
    set_seed(0, reproducible=True)
    learn = cam_learner(digits_dls(root/'data', bs=32), path=root/f'rank{rank}')
    cb = CAMCallback(items=4)
    with learn.no_bar(), learn.no_logging(): learn.fit(2, 1e-2, cbs=[DDPWrapper(), cb])
    torch.save(dict(history=cb.history, epochs=cb.epochs_done, state=learn.model.state_dict(),
                    losses=[l.item() for l in learn.recorder.losses]), root/f'result{rank}.pt')
    dist.destroy_process_group()
''')

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]

def test_distributed_only_rank_0_records_and_writes(data, tmp_path):
    (tmp_path/'data').symlink_to(data)
    (tmp_path/'worker.py').write_text(WORKER)
    port = _free_port()
    procs = [subprocess.Popen([sys.executable, str(tmp_path/'worker.py'), str(tmp_path)],
                              env={**os.environ, 'RANK': str(r), 'LOCAL_RANK': str(r), 'WORLD_SIZE': '2',
                                   'MASTER_ADDR': '127.0.0.1', 'MASTER_PORT': str(port)},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for r in range(2)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), '\n'.join(outputs)[-4000:]
    r0, r1 = (torch.load(tmp_path/f'result{r}.pt', weights_only=False) for r in range(2))
    assert sorted(r0['history']) == [0, 1, 2] and r0['history'][2].shape == (4, 1, 8, 8)
    assert sorted(p.name for p in (tmp_path/'rank0'/'cams').iterdir()) == ['epoch_000.png', 'epoch_001.png',
                                                                         'epoch_002.png']
    assert r1['history'] == {} and r1['epochs'] == 2 and not (tmp_path/'rank1').exists()
    assert all(torch.equal(r0['state'][k], r1['state'][k]) for k in r0['state']), "the ranks fell out of step"
    assert r0['losses'] == r1['losses']

@pytest.mark.parametrize('method, layer', [('gradcam', None), ('gradcam', -2), ('hirescam', 3), ('scorecam', None)])
def test_training_unchanged_with_gradient_methods(data, tmp_path, method, layer):
    "Seeded fits with and without the callback agree bit for bit, also when maps need gradients inside the body."
    import fastcam.methods  # noqa: F401  (registers HiResCAM and Score-CAM by name)
    runs = []
    for cbs in ([], [CAMCallback(items=4, method=method, layer=layer, fname=None)]):
        set_seed(0, reproducible=True)
        learn = cam_learner(digits_dls(data, bs=32), path=tmp_path)
        with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(2, 1e-2, cbs=cbs)
        runs.append(learn)
        if cbs: assert sorted(cbs[0].history) == [0, 1, 2]
    plain, watched = runs
    assert [l.item() for l in plain.recorder.losses] == [l.item() for l in watched.recorder.losses]
    assert plain.recorder.values == watched.recorder.values
    a, b = plain.model.state_dict(), watched.model.state_dict()
    assert [k for k in a if not torch.equal(a[k], b[k])] == []

def test_learner_with_the_callback_exports_and_loads(data, tmp_path):
    "A learner that keeps the callback (`learn.cam_cb`) can be exported after fitting; the history comes back."
    from fastai.learner import load_learner
    set_seed(0, reproducible=True)
    learn = cam_learner(digits_dls(data, bs=32), path=tmp_path)
    learn.add_cb(CAMCallback(items=2))
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-2)
    learn.export(tmp_path/'export.pkl')
    loaded = load_learner(tmp_path/'export.pkl')
    assert sorted(loaded.cam_cb.history) == [0, 1]
    assert torch.equal(loaded.cam_cb.history[1], learn.cam_cb.history[1])
    assert loaded.cam_cb.plot_history() is not None
