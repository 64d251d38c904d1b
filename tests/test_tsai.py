"""Maps of learners built by tsai (issue 22): `ts_learner` with InceptionTime, ResNet and XceptionTime, untrained
(nothing here needs a trained model), on small random signals `[n, 3, 64]`.

- `learn.cam` takes what tsai users have: validation indices, one signal `[c, L]` as a numpy array or a tensor, or a
  list of them; the batch is the one tsai's own `new_dl` makes (`learn.get_X_preds`), standardized by its batch
  transform; maps are `[n, k, l]`.
- The default layer is the block before the global pooling: `inceptionblock`, `resblock3`, and XceptionTime's `block`
  (its head resamples to 50 steps and mixes channels with 1x1 convolutions before the global pooling).
- Maps equal a Grad-CAM written here with plain autograd (the full graph, one backward per class, weights the
  gradient's mean over time) to 1e-5 relative.
- An item's map is the same alone and in a batch. tsai's own `get_attribution_map` averages the gradients over the
  batch, so its maps of a batch mix the items: it equals ours for one item, and differs in a batch.
- CAM is exact where the head is global average pooling and a linear layer (InceptionTime's `gap, fc`, ResNet's
  `gap, squeeze, fc`) and refuses XceptionTime's head.
"""
import warnings
import numpy as np
import pytest
import torch
from fastcam.all import CAM, GradCAM, NotCAMReadyError, default_layer, layer_name

warnings.filterwarnings('ignore', category=UserWarning)
warnings.filterwarnings('ignore', category=FutureWarning)
tsai_basics = pytest.importorskip('tsai.basics')
from tsai.models.InceptionTime import InceptionTime  # noqa: E402
from tsai.models.ResNet import ResNet  # noqa: E402
from tsai.models.XceptionTime import XceptionTime  # noqa: E402
from tsai.models.explainability import get_attribution_map  # noqa: E402

ARCHS = {InceptionTime: 'inceptionblock', ResNet: 'resblock3', XceptionTime: 'block'}  # arch -> default layer


def reference_gradcam(model, layer, x, cls):
    "Grad-CAM before its ReLU, with plain autograd: the whole graph, a forward hook, a backward per class: [bs, k, l]."
    kept = []
    handle = layer.register_forward_hook(lambda m, i, o: kept.append(o))
    try:
        with torch.enable_grad():
            logits = model(x)
            maps = []
            for c in cls.unbind(1):  # one class per item at a time
                g, = torch.autograd.grad(logits.gather(1, c[:, None]).sum(), kept[0], retain_graph=True)
                maps.append((g.mean(-1, keepdim=True) * kept[0]).sum(1))  # weights: the mean over time
    finally: handle.remove()
    return torch.stack(maps, 1).detach()

def relative_error(ours, ref) -> float:
    return ((ours - ref).abs().amax() / ref.abs().amax()).item()


@pytest.fixture(scope='module')
def signals():
    "Random signals [40, 3, 64] (mean 1, deviation 2) of two classes, 30 to train and 10 to validate."
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3, 64)).astype(np.float32) * 2 + 1
    return X, np.array(['down', 'up'] * 20), (list(range(30)), list(range(30, 40)))

@pytest.fixture(scope='module')
def dls(signals):
    X, y, splits = signals
    return tsai_basics.get_ts_dls(X, y, splits=splits, tfms=[None, tsai_basics.TSClassification()],
                                  batch_tfms=tsai_basics.TSStandardize(), bs=8)

def make_learner(dls, arch):
    learn = tsai_basics.ts_learner(dls, arch, seed=0)
    learn.model.eval()
    return learn

@pytest.fixture(scope='module', params=list(ARCHS), ids=lambda a: a.__name__)
def learn(request, dls): return make_learner(dls, request.param)

def plain(x: torch.Tensor) -> torch.Tensor: return x.as_subclass(torch.Tensor)  # tsai's TSTensor, as a tensor

def body_layer(learn): return dict(learn.model.named_modules())[ARCHS[type(learn.model)]]


def test_batch_is_tsais(dls, signals):
    "Indices, arrays and tensors make the batch tsai's `new_dl` makes, standardized; errors name the fix."
    learn, X = make_learner(dls, InceptionTime), signals[0]
    x = learn.cam_batch([0, X[31], torch.from_numpy(X[32])])
    torch.testing.assert_close(plain(x), plain(learn.dls.valid.new_dl(X[30:33]).one_batch()[0]))
    torch.testing.assert_close(plain(x), plain(learn.dls.valid.one_batch()[0][:3]))
    assert plain(x).std() < 1.5  # standardized: the raw signals have a deviation of 2
    np.testing.assert_allclose(plain(learn.decode_batch_images(x)).numpy(), X[30:33], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r'for several items pass a list, e\.g\. list\(x\)'): learn.cam_batch(X[:2])
    with pytest.raises(ValueError, match=r'add the channel axis with x\[None\]'): learn.cam_batch(X[0, 0])
    with pytest.raises(ValueError, match='has 2 channels'): learn.cam_batch(X[0, :2])
    with pytest.raises(ValueError, match='signals of different shapes'): learn.cam_batch([X[0], X[1, :, :32]])
    with pytest.raises(IndexError, match='the validation set has 10 items'): learn.cam_batch(10)


def test_default_layer(learn):
    "The default layer is the block before the global pooling."
    layer, reshape = default_layer(learn.model, plain(learn.cam_batch([0, 1])))
    assert (layer_name(learn.model, layer), reshape) == (ARCHS[type(learn.model)], None)


def test_default_layer_xceptiontime_any_length():
    "XceptionTime's head pools to 50 steps: its outputs are not feature maps, whatever the length L."
    model = XceptionTime(3, 2).eval()
    names = [layer_name(model, default_layer(model, torch.randn(2, 3, L))[0]) for L in (64, 100)]
    assert names == ['block', 'block']


def test_maps_equal_reference(learn):
    "Maps [n, k, l] of two classes per item at the default layer equal plain-autograd Grad-CAM, before and after ReLU."
    items, cls = [0, 1, 2, 3], torch.tensor([[0, 1], [1, 0], [1, 1], [0, 0]])
    raw = learn.cam(items, cls=cls, method='gradcam', relu=False)
    assert raw.shape == (4, 2, 64)
    ref = reference_gradcam(learn.model, body_layer(learn), plain(learn.cam_batch(items)), cls)
    assert (ref > 0).any() and (ref < 0).any()
    assert relative_error(raw, ref) < 1e-5
    assert relative_error(learn.cam(items, cls=cls, method='gradcam'), ref.relu()) < 1e-5


def test_alone_as_in_batch(learn):
    "Each item's map is the same alone as in a batch; tsai's get_attribution_map is ours alone, and mixes a batch."
    items, cls = [0, 1, 2, 3], torch.tensor([1, 0, 1, 0])
    batch = learn.cam(items, cls=cls, method='gradcam', relu=False)[:, 0]  # [4, l]
    alone = torch.cat([learn.cam(i, cls=int(c), method='gradcam', relu=False)[:, 0] for i, c in zip(items, cls)])
    assert relative_error(batch, alone) < 1e-5
    x, layer = plain(learn.cam_batch(items)), body_layer(learn)
    theirs_alone = torch.stack([get_attribution_map(learn.model, layer, x[i:i + 1], cls[i:i + 1], apply_relu=False)
                                for i in range(4)])  # each [c, l]: the map repeated per channel of the input
    assert relative_error(alone, theirs_alone[:, 0]) < 1e-5
    theirs_batch = get_attribution_map(learn.model, layer, x, cls, apply_relu=False)[:, 0]  # [4, l]
    # tsai scales by 1/bs (the mean of the scores) and averages the weights over the batch: each map moves
    assert relative_error(theirs_batch * len(items), alone) > 0.1


def test_cam_exact_or_refused(learn):
    "CAM on a global-average-pooling + linear head: its mean over time + bias is the logit, and Grad-CAM is CAM / l."
    x = plain(learn.cam_batch([0, 1, 2]))
    if type(learn.model) is XceptionTime:  # AdaptiveAvgPool1d(50) and 1x1 ConvBlocks before the global pooling
        with pytest.raises(NotCAMReadyError, match=r"Use Grad-CAM instead \(GradCAM, or method='gradcam'\)"):
            learn.cam([0, 1, 2], cls=1, method='cam')
        return
    maps = learn.cam([0, 1, 2], cls=1, method='cam', relu=False)
    assert maps.shape == (3, 1, 64)
    with torch.no_grad(): logits = learn.model(x)
    torch.testing.assert_close(maps.mean(-1)[:, 0] + learn.model.fc.bias[1], logits[:, 1], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(CAM(learn.model)(x, cls=1), maps.relu())
    assert relative_error(GradCAM(learn.model, relu=False)(x, cls=1), maps / 64) < 1e-5


def test_show_cam(dls, signals):
    "show_cam draws the decoded channels as lines over a band of the map, titled with the class name."
    import matplotlib.pyplot as plt
    learn = make_learner(dls, ResNet)
    ax = learn.show_cam(0, cls='up')
    assert len(ax.lines) == 3 and len(ax.images) == 1
    np.testing.assert_allclose(np.stack([line.get_ydata() for line in ax.lines]), signals[0][30], rtol=1e-4, atol=1e-4)
    assert ax.get_title().split()[0] == 'up'
    assert len(learn.show_cams([0, 1], topk=2).axes) == 6  # the signal, then its two maps, per item
    plt.close('all')
