"""find_shortcuts, test() and ShortcutEraser on the shortcut tutorial's data and models (its fits come from
tests/fit_cache.py when the tutorial ran first in this run, and are stored for it otherwise). The fix's training is
judged in the tutorial itself (nbs/tutorials/shortcut.ipynb), which trains it once; here the eraser is checked batch by
batch."""
import pytest
import torch
from fastai.vision.all import Learner, DataLoaders, DataLoader, Resize, set_seed
from fastcam.data import digits_dls, make_digits, mark_digits
from fastcam.learner import cam_learner
from fastcam.shortcuts import ShortcutCandidate, ShortcutEraser, find_shortcuts
from fastcam.store import store_maps

MARKED = '7'

@pytest.fixture(scope='module')
def models(tmp_path_factory):
    "The shortcut tutorial's two models: on every 7 a yellow square in the corner (both splits), and without it."
    root = tmp_path_factory.mktemp('shortcut')
    make_digits(root/'clean', n_train=2000, n_valid=400)
    mark_digits(root/'clean', root/'marked', MARKED)  # the tutorial's pictures, pixel for pixel
    set_seed(42)  # the tutorial's steps, in its order: the fit cache knows these fits by what they depend on
    marked_dls = digits_dls(root/'marked', bs=32)
    clean_dls = digits_dls(root/'clean', bs=32)
    shortcut = cam_learner(marked_dls, ps=0.1)
    shortcut.fit_one_cycle(3, 1e-2)
    set_seed(42)
    clean = cam_learner(clean_dls, ps=0.1)
    clean.fit_one_cycle(3, 1e-2)
    return root, shortcut, clean

@pytest.fixture(scope='module')
def found(models):
    return find_shortcuts(models[1])

def test_the_mark_is_found_and_confirmed(found):
    top = found[0]
    assert (top.kind, top.name) == ('spot', MARKED), found
    x0, y0, x1, y1 = top.box
    assert (x0, y0) == (0, 0) and x1 >= 6 and y1 >= 6, top.box  # it holds the 6 px square
    assert top.share > 0.9 and top.others < 0.05, top
    # the items it names are 7s whose maps peak inside the box
    assert (found.labels[top.items] == found.names.index(MARKED)).all()
    result = top.test()
    assert result.confirmed and result.effect > 0.9 and result.baseline < 0.1, result
    assert 'CONFIRMED' in repr(result) and 'CONFIRMED' in repr(top)
    assert top in found.confirmed()

def test_the_clean_model_has_no_confirmed_shortcut(models):
    found = find_shortcuts(models[2])
    results = found.test()
    assert found.confirmed() == [], results
    if not len(found): assert 'nothing found' in repr(found)

def erased_batch(learn, candidate) -> tuple:
    "A training batch of `learn` before and after `ShortcutEraser(candidate)`'s `before_batch`: `(x, y, erased x)`."
    eraser = ShortcutEraser(candidate, p=0.5, seed=1)
    eraser.learn = learn
    eraser.before_fit()
    x, y = learn.dls.train.one_batch()
    learn.training, learn.xb, learn.yb = True, (x,), (y,)
    try: eraser.before_batch()
    finally: learn.training = False
    return x.as_subclass(torch.Tensor), y.as_subclass(torch.Tensor), learn.xb[0].as_subclass(torch.Tensor)

def test_eraser_on_a_batch(models, found):
    "Erased items: noise in the box, the rest untouched; other classes not erased: a marked 7's box pasted; 7s kept."
    _, shortcut, _ = models
    x, y, out = erased_batch(shortcut, found[0])
    x0, y0, x1, y1 = found[0].box
    inside = torch.zeros(x.shape[-2:], dtype=torch.bool)
    inside[y0:y1, x0:x1] = True
    seven = shortcut.dls.vocab.o2i[MARKED]
    changed = (out != x).flatten(1).any(1)
    assert (out[:, :, ~inside] == x[:, :, ~inside]).all()  # nothing outside the box
    yellow = ((out[:, 0, :6, :6] > 0.99) & (out[:, 1, :6, :6] > 0.99) & (out[:, 2, :6, :6] < 0.01)).flatten(1).all(1)
    assert (yellow | changed)[y == seven].all()  # a 7 keeps its mark or loses it to noise
    pasted = yellow & (y != seven)
    assert pasted.any() and changed[pasted].all()
    erased = changed & ~yellow
    assert erased.any() and 0.2 < (erased.float().mean().item()) < 0.8

def test_colour_eraser_on_a_batch(models, found):
    "A colour cast: the class's erased pictures lose it, the other classes' rest get it, the others stay as they are."
    _, shortcut, _ = models
    seven = shortcut.dls.vocab.o2i[MARKED]
    items = (found.labels == seven).nonzero()[:, 0]
    cast = ShortcutCandidate(found, 'colour', seven, 1., 0., items)
    assert cast.box is None and 'colours' in cast.where
    x, y, out = erased_batch(shortcut, cast)
    # the change of each channel that takes the other classes' typical colours to the cast's: out = x * a + b
    (m0, s0), (m1, s1) = cast.reference.view(2, 3), cast.cast.view(2, 3)
    a, b = (s1 / s0)[:, None, None], (m1 - m0 * s1 / s0)[:, None, None]
    close = lambda u, v: (u - v).abs().flatten(1).max(1).values < 1e-4
    kept, lost, given = close(out, x), close(out, (x - b) / a), close(out, x * a + b)
    assert (kept | lost | given).all()  # every picture is kept, or loses the cast, or gets it
    assert lost[y == seven].any() and not lost[y != seven].any()  # only the class loses it
    assert given[y != seven].any() and not given[y == seven].any()  # only the other classes get it
    assert kept[y != seven].any()  # the other classes' erased pictures have nothing to lose
    assert (ShortcutEraser(cast).p, ShortcutEraser(found[0]).p) == (0.8, 0.5)  # a cast is erased in more pictures

def test_bad_input(models, found):
    root, shortcut, _ = models
    empty = Learner(DataLoaders(DataLoader([]), DataLoader([])), shortcut.model, loss_func=shortcut.loss_func)
    with pytest.raises((ValueError, TypeError), match="no training data"): find_shortcuts(empty)
    small = digits_dls(root/'clean', bs=32, item_tfms=Resize(48))
    with pytest.raises(ValueError, match="48x48 but the model learned from 64x64"):
        find_shortcuts(shortcut, dl=small.valid)
    other = cam_learner(small, ps=0.1, cbs=ShortcutEraser(found[0]))
    with pytest.raises((ValueError, TypeError), match="this candidate was found on other data"): other.fit(1)
    with pytest.raises((ValueError, TypeError), match="needs candidates from find_shortcuts"): ShortcutEraser([])
    with pytest.raises((ValueError, TypeError), match="unknown kinds"): find_shortcuts(shortcut, kinds=('spots',))

def test_maps_from_a_store_give_the_same_spots(models, found, tmp_path):
    "find_shortcuts on the maps store_maps wrote for the same items agrees with its own pass."
    _, shortcut, _ = models
    store = store_maps(shortcut, tmp_path/'maps', dl=found.dl, cls='target', progress=False)
    stored = find_shortcuts(shortcut, dl=found.dl, maps=store, kinds=('spot',))
    spots = [c for c in found if c.kind == 'spot']
    assert [(c.cls, c.box, c.items.tolist()) for c in stored] == [(c.cls, c.box, c.items.tolist()) for c in spots]
    assert stored[0].share == pytest.approx(spots[0].share)
