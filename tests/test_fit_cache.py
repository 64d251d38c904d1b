"""A fit loaded from the cache leaves the learner, its data and every generator exactly as the fit itself does; a fit
watched by `CAMCallback` stores what the same fit without it leaves."""
import random
import numpy as np
import pytest
import torch
from fastai.learner import Learner
from fastai.torch_core import set_seed
from fastai.callback.training import ShortEpochCallback
from fastcam.all import make_digits, digits_dls, cam_learner, CAMCallback
from fastcam.data import mark_digits
from fit_cache import FitCache

@pytest.fixture(scope='module')
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp('digits')
    make_digits(path, n_train=64, n_valid=16)
    return path

def _fit(path, fit, cbs=()):
    "A seeded learner on the data in `path` with callbacks `cbs`, fitted with `fit`, and what the fit leaves behind."
    set_seed(7)
    learn = cam_learner(digits_dls(path, bs=16), ps=0.1)
    learn.add_cbs(cbs)
    with learn.no_bar(), learn.no_logging(): fit(learn, 2, 1e-2)
    after = dict(weights=learn.model.state_dict(), training=[m.training for m in learn.model.modules()],
                 opt=learn.opt.state_dict(), values=learn.recorder.values, losses=learn.recorder.losses,
                 lrs=learn.recorder.lrs, names=list(learn.recorder.metric_names), epoch=learn.epoch,
                 train_rng=learn.dls.train.rng.getstate(), valid_rng=learn.dls.valid.rng.getstate(),
                 draws=(torch.rand(3), random.random(), np.random.rand()))
    after['validate'] = learn.validate()  # after the draws: validation moves the valid loader's generator on
    return after

def _same(a, b):
    if isinstance(a, torch.Tensor): return torch.equal(a, b)
    if isinstance(a, dict): return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)): return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b

def test_a_loaded_fit_is_the_fit(data, tmp_path):
    original = Learner.fit_one_cycle
    plain = _fit(data, original)
    cache = FitCache(tmp_path)
    fit = lambda learn, *args: cache.fit_one_cycle(original, learn, *args)
    trained, loaded = _fit(data, fit), _fit(data, fit)
    assert (cache.trained, cache.replayed) == (1, 1)
    for name in plain:
        assert _same(plain[name], trained[name]), f"{name} differs when the fit goes through the cache"
        assert _same(plain[name], loaded[name]), f"{name} differs when the fit is loaded from the cache"

def test_a_watched_fit_stores_the_plain_fit(data, tmp_path):
    "A fit with `CAMCallback` trains and stores its outcome; the same fit without it loads that, and equals a real one."
    original = Learner.fit_one_cycle
    plain = _fit(data, original)
    cache = FitCache(tmp_path)
    fit = lambda learn, *args: cache.fit_one_cycle(original, learn, *args)
    watchers = [CAMCallback(items=2, fname=None) for _ in range(2)]
    watched = _fit(data, fit, watchers[:1])
    loaded = _fit(data, fit)
    again = _fit(data, fit, watchers[1:])  # a watched fit trains even when the cache holds its outcome
    assert (cache.trained, cache.replayed) == (2, 1)
    assert [sorted(cb.history) for cb in watchers] == [[0, 1, 2]] * 2
    assert all(torch.equal(watchers[0].history[e], watchers[1].history[e]) for e in range(3))
    for name in plain:
        for other, how in ((watched, 'with CAMCallback'), (loaded, 'when loaded'), (again, 'watched again')):
            assert _same(plain[name], other[name]), f"{name} differs {how}"

def test_what_is_not_cached(data, tmp_path):
    "Another seed, other pictures, another batch size or a callback beyond fastai's defaults make another fit."
    cache = FitCache(tmp_path/'fits')
    set_seed(7)
    learn = cam_learner(digits_dls(data, bs=16), ps=0.1)
    state, key = torch.get_rng_state(), cache.key(learn, dict(n_epoch=2, lr_max=1e-2))
    mark_digits(data, tmp_path/'marked', '7')  # the same labels and file names, other pixels on the 7s
    set_seed(7)
    assert cache.key(cam_learner(digits_dls(tmp_path/'marked', bs=16), ps=0.1), dict(n_epoch=2, lr_max=1e-2)) != key
    set_seed(8)
    assert cache.key(cam_learner(digits_dls(data, bs=16), ps=0.1), dict(n_epoch=2, lr_max=1e-2)) != key
    set_seed(7)
    assert cache.key(cam_learner(digits_dls(data, bs=32), ps=0.1), dict(n_epoch=2, lr_max=1e-2)) != key
    set_seed(7)
    assert cache.key(learn, dict(n_epoch=3, lr_max=1e-2)) != key
    learn.add_cb(CAMCallback(items=2, fname=None))  # watches: the key is the fit's without it
    torch.set_rng_state(state)
    assert cache.key(learn, dict(n_epoch=2, lr_max=1e-2)) == key
    learn.add_cb(ShortEpochCallback())  # changes the training: no key
    assert cache.key(learn, dict(n_epoch=2, lr_max=1e-2)) is None
