"""`CAMCallback`, `CAMInterpretation` and `store_maps` on a tsai learner (issue 22, point 4). The notebooks check them on
learners built by hand over plain tensors (nbs/08_callback, 09_interpret, 11_store); this runs what a tsai user runs:
`get_ts_dls` with `TSClassification` labels (a vocab of strings), `ts_learner` with InceptionTime, batches of `TSTensor`s
made by tsai's own loaders.

- The callback leaves training bit for bit as it is without it, and records, before and after training, the maps that
  the method gives for the same items (`learn.cam_batch`) with the model of that moment; its PNGs are written.
- The interpretation's maps are the method's for the predicted and the actual class of every item, and its top losses
  draw each item's own channels as lines.
- `store_maps` on tsai's validation loader stores `learn.cam_dl`'s maps bit for bit, in order, with their shape in the
  manifest; `CAMInterpretation.from_store` gives `from_learner`'s interpretation without running the model.
"""
import matplotlib
import numpy as np
import pytest
import torch
matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
tsai_basics = pytest.importorskip('tsai.basics')  # tsai is in the dev extra
from tsai.models.InceptionTime import InceptionTime  # noqa: E402
from fastai.torch_core import set_seed  # noqa: E402
from fastcam.all import CAMCallback, CAMInterpretation, cam_method, store_maps  # noqa: E402

N_TRAIN, N_VALID, SHAPE, VOCAB = 32, 12, (3, 32), ['fall', 'flat', 'rise']

def tsai_learner(path):
    "A seeded tsai learner: InceptionTime (4 filters) on random signals [3, 32] of three classes named by strings."
    set_seed(0, reproducible=True)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((N_TRAIN + N_VALID, *SHAPE)).astype(np.float32)
    y = np.array(VOCAB)[rng.integers(0, 3, N_TRAIN + N_VALID)]
    splits = (list(range(N_TRAIN)), list(range(N_TRAIN, N_TRAIN + N_VALID)))
    dls = tsai_basics.get_ts_dls(X, y, splits=splits, tfms=[None, tsai_basics.TSClassification()], bs=8,
                                 num_workers=0)
    return tsai_basics.ts_learner(dls, InceptionTime, arch_config=dict(nf=4), metrics=[], path=path)

def assert_maps_close(got: torch.Tensor, want: torch.Tensor):
    "Maps equal to 1e-5 of their largest value: the same computation, batched otherwise."
    assert got.shape == want.shape
    torch.testing.assert_close(got.cpu(), want.cpu(), rtol=0, atol=1e-5 * float(want.abs().max()))

def test_callback_trains_bit_for_bit_and_records_the_methods_maps(tmp_path):
    plain = tsai_learner(tmp_path/'plain')
    with plain.no_bar(), plain.no_logging(): plain.fit(2, 1e-2)
    items, cb = [0, 3, 5], CAMCallback(items=[0, 3, 5])
    watched = tsai_learner(tmp_path/'watched')
    with watched.no_bar(), watched.no_logging(): watched.fit(2, 1e-2, cbs=cb)
    assert [l.item() for l in plain.recorder.losses] == [l.item() for l in watched.recorder.losses]
    assert plain.recorder.values == watched.recorder.values
    plain_state, watched_state = plain.model.state_dict(), watched.model.state_dict()
    assert [k for k in plain_state if not torch.equal(plain_state[k], watched_state[k])] == []

    x = watched.cam_batch(items)
    assert type(x).__name__ == 'TSTensor' and x.shape == (3, *SHAPE)
    labels = [int(watched.dls.valid_ds[i][1]) for i in items]
    assert sorted(cb.history) == [0, 1, 2] and cb._info[2][0].tolist() == labels
    fresh = tsai_learner(tmp_path/'fresh')  # the weights before training
    assert_maps_close(cb.history[0], cam_method(fresh.model).compute(x, labels).maps)
    assert_maps_close(cb.history[2], cam_method(watched.model).compute(x, labels).maps)
    assert not torch.equal(cb.history[0], cb.history[2])
    assert [t[0].split()[0] for t in cb._titles(2)] == [VOCAB[c] for c in labels]  # class names from tsai's vocab
    assert sorted(p.name for p in (tmp_path/'watched'/'cams').iterdir()) == [f'epoch_00{e}.png' for e in range(3)]

def test_interpretation_maps_and_top_losses(tmp_path):
    learn = tsai_learner(tmp_path)
    interp = CAMInterpretation.from_learner(learn, progress=False)
    assert [str(v) for v in interp.vocab] == VOCAB
    x = learn.cam_batch(list(range(N_VALID)))
    labels = torch.tensor([int(y) for _, y in learn.dls.valid_ds])
    assert torch.equal(interp.targs, labels)
    both = torch.stack([interp.decoded, labels], 1)  # [n, 2]: the predicted and the actual class
    assert (both[:, 0] != both[:, 1]).any()  # some items whose two maps differ
    assert_maps_close(interp.maps, cam_method(learn.model).compute(x, both).maps)

    fig = interp.plot_top_losses(2)
    idx = interp.top_losses(2)[1].tolist()
    assert len(fig.axes) == 2 * 3
    for row, i in enumerate(idx):
        assert fig.axes[3 * row].get_title() == f"item {i}, loss {float(interp.losses[i]):.2f}"
        drawn = np.stack([line.get_ydata() for line in fig.axes[3 * row].lines])  # one line per channel
        np.testing.assert_allclose(drawn, x[i].cpu().numpy(), rtol=0, atol=1e-6)
        assert fig.axes[3 * row + 2].get_title().split()[:2] == ['actual', VOCAB[int(labels[i])]]
    plt.close('all')

def test_store_and_interpretation_from_store(tmp_path):
    learn = tsai_learner(tmp_path)
    store = store_maps(learn, tmp_path/'maps', topk=3, progress=False)
    expected = learn.cam_dl(topk=3, progress=False)
    got = store.result()
    for a, b in [(got.maps, expected.maps), (got.logits, expected.logits), (got.targets, expected.targets)]:
        assert torch.equal(a, b)
    assert store.manifest['map_shape'] == list(expected.maps.shape[1:])
    assert len(store) == N_VALID

    from_store = CAMInterpretation.from_store(learn, tmp_path/'maps')
    direct = CAMInterpretation.from_learner(learn, progress=False)
    assert torch.equal(from_store.decoded, direct.decoded) and torch.equal(from_store.targs, direct.targs)
    torch.testing.assert_close(from_store.losses, direct.losses, rtol=0, atol=1e-6)
    assert_maps_close(from_store.maps, direct.maps)
