"""Heavier checks of `CAMCallback` than its notebook runs: bit-for-bit training with gradient methods inside the body,
and a learner that keeps the callback through export. Distributed training (two processes, rank 0 alone records and
writes, the ranks in step) is tests/test_distrib.py's, inside fastai's own `learn.distrib_ctx()`. The notebook
(nbs/08_callback.ipynb) has the rest."""
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
