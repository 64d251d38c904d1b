"""The shelf's metrics (issue 24) against the peers that have them, on the same maps and model.

A seeded random resnet18 with 5 classes explains a batch of 32-pixel images; every metric gets the same maps on both
sides (fastcam's, stretched to the image and scaled to [0, 1] the way fastcam's metric does it), and the two numbers
must agree per image to 1e-6 (probabilities) or 1e-5 (logits).

- **ROAD**: pytorch-grad-cam's `RemoveMostRelevantFirst` / `RemoveLeastRelevantFirst` with its `NoisyLinearImputer`,
  averaged over percentiles as its `ROAD...Average` classes do, scored by `ClassifierOutputSoftmaxTarget`. Both sides
  without noise (each draws its own: the peer per image and channel from torch's global generator, fastcam from a
  seeded one for the batch). The imputation itself is checked alone too.
- **Average Drop, Increase in Confidence**: torchcam's `ClassificationMetric` (the paper's relative drop) through an
  extractor that hands it fastcam's maps; pytorch-grad-cam's `DropInConfidence` (the drop not divided by the score,
  `relative=False`) and `IncreaseInConfidence`.
- **Sparseness, complexity**: Quantus's `Sparseness` and `Complexity` with their defaults.
- **Random logit**: Quantus's `RandomLogit` with fastcam's Grad-CAM as its `explain_func`, `flat=True` (Quantus
  flattens the maps before SSIM) and each map scaled by its own maximum (Quantus's default scales by the batch's). The
  2-D SSIM, fastcam's default, against scikit-image's `structural_similarity` on 2-D arrays.
"""
import contextlib
import functools
import numpy as np
import pytest
import torch
import torchvision
from fastcam.all import (CAMMethod, average_drop, cam_method, complexity, increase_in_confidence,
                         noisy_linear_imputation, normalize_maps, random_logit, road, sparseness, ssim, upsample_maps)

SIZE, CLASSES = 32, 5

@pytest.fixture(scope='module')
def model():
    torch.manual_seed(0)
    return torchvision.models.resnet18(num_classes=CLASSES).eval()

@pytest.fixture(scope='module')
def batch():
    g = torch.Generator().manual_seed(1)
    return torch.randn(4, 3, SIZE, SIZE, generator=g), torch.rand(4, 4, 4, generator=g)  # images, maps at 4x4

def stretched(maps):
    "The maps as fastcam's ROAD ranks them: stretched to the image, then scaled to [0, 1]."
    return normalize_maps(upsample_maps(maps, (SIZE, SIZE)))

def test_imputation_agrees_with_pytorch_grad_cam():
    from pytorch_grad_cam.metrics.road import NoisyLinearImputer
    g = torch.Generator().manual_seed(2)
    x = torch.randn(3, 3, 24, 28, generator=g)
    blob = upsample_maps(torch.rand(3, 3, 3, generator=g), (24, 28))
    keep = torch.stack([blob[0] < 0.5, torch.rand(24, 28, generator=g) > 0.7, blob[2] > 0.2])  # blobs, scattered
    ours = noisy_linear_imputation(x, keep, noise=0)
    peer = torch.stack([NoisyLinearImputer(noise=0)(x[i], keep[i].float()) for i in range(3)])
    np.testing.assert_allclose(ours.numpy(), peer.numpy(), atol=1e-4)
    assert torch.equal(ours[:, :, keep[0]][0], x[0][:, keep[0]])  # kept pixels are kept exactly

@pytest.mark.parametrize('order', ['most', 'least'])
def test_road_agrees_with_pytorch_grad_cam(model, batch, order):
    from pytorch_grad_cam.metrics.road import NoisyLinearImputer
    from pytorch_grad_cam.metrics.perturbation_confidence import (PerturbationConfidenceMetric,
                                                                   RemoveLeastRelevantFirst, RemoveMostRelevantFirst)
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget
    x, maps = batch
    percentiles = (10, 50, 90)
    classes = model(x).argmax(1)
    targets = [ClassifierOutputSoftmaxTarget(int(c)) for c in classes]
    remove = RemoveMostRelevantFirst if order == 'most' else RemoveLeastRelevantFirst
    peer = np.mean([PerturbationConfidenceMetric(remove(p, NoisyLinearImputer(noise=0)))(
        x, stretched(maps).numpy(), targets, model) for p in percentiles], 0)
    ours = road(model, x, maps, order=order, percentiles=percentiles, noise=0, reduce=False)
    np.testing.assert_allclose(ours.numpy(), peer, atol=1e-6)
    assert np.abs(peer).min() > 1e-4  # the scores move: the check is not 0 == 0

class _Extractor:
    "What torchcam's `ClassificationMetric` asks of a CAM extractor, handing it fixed maps (torchcam scales them)."
    def __init__(self, model, maps): self.model, self.maps = model, maps
    def __call__(self, class_idx=None, scores=None, normalized=True, **kwargs): return [normalize_maps(self.maps)]
    def fuse_cams(self, cams): return cams[0]
    def _hooks_off(self): return contextlib.nullcontext()

def test_average_drop_agrees_with_torchcam(model, batch):
    from torchcam.metrics import ClassificationMetric
    x, maps = batch
    for cls in range(CLASSES):  # some classes gain from the masking, others lose
        metric = ClassificationMetric(_Extractor(model, maps), functools.partial(torch.softmax, dim=-1))
        metric.update(x, class_idx=cls)
        peer = metric.summary()
        assert abs(average_drop(model, x, maps, cls) - peer['avg_drop']) < 1e-6
        assert increase_in_confidence(model, x, maps, cls) == peer['conf_increase']
    raw = ClassificationMetric(_Extractor(model, maps))  # logits: torchcam divides by them as they are
    raw.update(x, class_idx=0)
    assert abs(average_drop(model, x, maps, 0, act=lambda logits: logits) - raw.summary()['avg_drop']) < 1e-5

def test_confidence_agrees_with_pytorch_grad_cam(model, batch):
    from pytorch_grad_cam.metrics.cam_mult_image import DropInConfidence, IncreaseInConfidence
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget
    x, maps = batch
    cams = upsample_maps(normalize_maps(maps), (SIZE, SIZE)).numpy()  # scaled at the maps' resolution, then stretched
    for cls in range(CLASSES):
        targets = [ClassifierOutputSoftmaxTarget(cls)] * len(x)
        drop = average_drop(model, x, maps, cls, relative=False, reduce=False)
        np.testing.assert_allclose(drop.numpy(), DropInConfidence()(x, cams, targets, model), atol=1e-6)
        up = increase_in_confidence(model, x, maps, cls, reduce=False)
        np.testing.assert_array_equal(up.numpy(), IncreaseInConfidence()(x, cams, targets, model))

def test_sparseness_and_complexity_agree_with_quantus(model, batch):
    quantus = pytest.importorskip('quantus')
    x, _ = batch
    g = torch.Generator().manual_seed(3)
    maps = torch.cat([torch.rand(3, 4, 4, generator=g) ** 3, torch.zeros(1, 4, 4)])  # a zero map too
    maps[3, 1, 2] = 1.
    a = upsample_maps(maps, (SIZE, SIZE))[:, None].numpy()  # Quantus scores maps at the input's size
    y = np.zeros(len(x), dtype=int)
    for ours, Peer in ((sparseness, quantus.Sparseness), (complexity, quantus.Complexity)):
        peer = Peer(disable_warnings=True)(model=model, x_batch=x.numpy(), y_batch=y, a_batch=a.copy(), device='cpu')
        np.testing.assert_allclose(ours(maps, SIZE, reduce=False).numpy(), peer, atol=1e-6)
        np.testing.assert_allclose(ours(torch.as_tensor(a), reduce=False).numpy(), peer, atol=1e-6)

def test_random_logit_agrees_with_quantus(model, batch):
    quantus = pytest.importorskip('quantus')
    x, _ = batch
    method = cam_method(model, 'gradcam', 'layer2')
    def explain(model, inputs, targets, **kwargs):  # Quantus's explain_func: fastcam's maps at the input's size
        res = method.compute(torch.as_tensor(inputs), torch.as_tensor(targets)[:, None])
        return upsample_maps(res.maps, (SIZE, SIZE)).numpy()
    y = model(x).argmax(1).numpy()
    a = explain(model, x.numpy(), y)
    for seed in (0, 42):
        peer = quantus.RandomLogit(num_classes=CLASSES, seed=seed, disable_warnings=True,
                                   normalise_func_kwargs=dict(normalise_axes=[1, 2, 3]))(
            model=model, x_batch=x.numpy(), y_batch=y, a_batch=a.copy(), explain_func=explain, device='cpu')
        ours = random_logit(method, x, seed=seed, flat=True, reduce=False)
        np.testing.assert_allclose(ours.numpy(), np.array(peer, dtype=np.float32), atol=1e-6)
        assert not np.isnan(peer).any()

def test_ssim_agrees_with_scikit_image():
    from skimage.metrics import structural_similarity
    g = torch.Generator().manual_seed(4)
    a, b = torch.rand(3, 20, 24, generator=g), torch.rand(3, 20, 24, generator=g) ** 2
    b[2] = a[2] * 0.5 + 0.1 * b[2]  # a similar pair
    span = lambda p, q: float(torch.cat([p, q]).max() - torch.cat([p, q]).min())
    peer = [structural_similarity(p.numpy(), q.numpy(), data_range=span(p, q)) for p, q in zip(a, b)]
    np.testing.assert_allclose(ssim(a, b).numpy(), peer, atol=1e-6)
    assert peer[2] > 0.5 > peer[0]

FAITHFULNESS = ['deletion_auc', 'insertion_auc', 'road_most', 'road_least', 'average_drop', 'increase_in_confidence']

@pytest.fixture(scope='module')
def demo_learner(tmp_path_factory):
    "The demo's model, as the quickstart tutorial and `fastcam demo` train it: a replay when either ran first."
    from fastai.torch_core import set_seed
    from fastcam.all import cam_learner, digits_dls, make_digits
    path = tmp_path_factory.mktemp('digits')
    make_digits(path, n_train=3000, n_valid=600)
    set_seed(42)
    learn = cam_learner(digits_dls(path, bs=64), ps=0.1)
    learn.fit_one_cycle(4, 1e-2)
    return learn

class RandomMaps(CAMMethod):
    "Seeded uniform noise at the layer's resolution: the baseline where `RandomCAM` is not registered."
    needs_grad = False
    def layer_map(self, A, G, targets, logits, x):
        noise = torch.rand(A.shape[0], 1, *A.shape[2:], generator=torch.Generator().manual_seed(0))
        return noise.to(A).expand(-1, targets.shape[1], *A.shape[2:])

def test_random_maps_lose_on_every_faithfulness_metric(demo_learner):
    "A metric that cannot tell RandomCAM's maps from Grad-CAM's, each in its own direction, is broken."
    from fastcam.all import METHODS, REPORT_METRICS, cam_method
    random = cam_method(demo_learner.model, 'randomcam' if 'randomcam' in METHODS else RandomMaps)
    curves = demo_learner.cam_report([random, 'gradcam'], n_items=16, metrics=FAITHFULNESS[:4], steps=8,
                                     percentiles=(20, 50, 80), progress=False)
    # Increase in Confidence counts rare events (a tenth of the items or less): every validation item, 2 forwards each
    confidence = demo_learner.cam_report([random, 'gradcam'], metrics=FAITHFULNESS[4:], progress=False)
    report = curves.join(confidence.drop(columns='seconds_per_image'), lsuffix='_curves')
    print(report.round(4).to_string())
    for metric in FAITHFULNESS:
        random_score, grad_score = report.iloc[0][metric], report.loc['gradcam', metric]
        assert grad_score > random_score if REPORT_METRICS[metric] == 'higher' else grad_score < random_score, metric
