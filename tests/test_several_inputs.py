"""A learner whose model takes two inputs (a picture and two numbers, fastai's n_inp=2): every path that computes maps
over a DataLoader passes both inputs, and its maps equal the method's on the same batch."""
import torch
from torch import nn
from fastai.data.core import Datasets
from fastai.data.transforms import Categorize, ItemGetter
from fastai.learner import Learner
from fastai.losses import CrossEntropyLossFlat
from fastcam.all import CAMInterpretation, GradCAM, MapStore, store_maps
import pytest


class ImageMeta(nn.Module):
    "The features of a picture, pooled and gated by two numbers of metadata."
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2, padding=1),
                                  nn.ReLU())
        self.gate, self.fc = nn.Linear(2, 8), nn.Linear(8, 3)
    def forward(self, img, meta): return self.fc(self.body(img).mean((2, 3)) * torch.sigmoid(self.gate(meta)))


@pytest.fixture(scope='module')
def learn():
    g = torch.Generator().manual_seed(0)
    imgs, meta, labels = torch.randn(40, 3, 12, 12, generator=g), torch.randn(40, 2, generator=g), torch.arange(40) % 3
    rows = [(imgs[i], meta[i], int(labels[i])) for i in range(40)]
    dsets = Datasets(rows, tfms=[[ItemGetter(0)], [ItemGetter(1)], [ItemGetter(2), Categorize()]],
                     splits=[list(range(24)), list(range(24, 40))], n_inp=2)
    return Learner(dsets.dataloaders(bs=6), ImageMeta().eval(), loss_func=CrossEntropyLossFlat())


def valid_batch(learn):
    "The whole validation set as one batch: (pictures, metadata, labels)."
    return learn.dls.valid.new(bs=len(learn.dls.valid_ds), shuffle=False).one_batch()


def test_cam_dl_passes_both_inputs(learn):
    img, meta, y = valid_batch(learn)
    expected = GradCAM(learn.model, 'body')((img, meta), topk=2)
    got = learn.cam_dl(method='gradcam', layer='body', topk=2, progress=False)
    torch.testing.assert_close(got.maps, expected, rtol=1e-5, atol=1e-6)
    changed = GradCAM(learn.model, 'body')((img, meta + 3), topk=2)
    assert (changed - expected).abs().max() > 1e-3  # the metadata really reaches the map


def test_interpretation_passes_both_inputs(learn):
    img, meta, y = valid_batch(learn)
    interp = CAMInterpretation.from_learner(learn, method='gradcam', layer='body', progress=False)
    method = GradCAM(learn.model, 'body')
    predicted = method.compute((img, meta))
    torch.testing.assert_close(interp.maps[:, 0], predicted.maps[:, 0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(interp.maps[:, 1], method((img, meta), y)[:, 0], rtol=1e-5, atol=1e-6)
    assert (interp.decoded != interp.targs).any()  # some actual-class maps differ from the predicted's


def test_store_passes_both_inputs(learn, tmp_path):
    img, meta, y = valid_batch(learn)
    store = store_maps(learn, tmp_path/'maps', method='gradcam', layer='body', cls='target', progress=False)
    assert isinstance(store, MapStore)
    torch.testing.assert_close(store.result().maps, GradCAM(learn.model, 'body')((img, meta), y), rtol=1e-5, atol=1e-6)
