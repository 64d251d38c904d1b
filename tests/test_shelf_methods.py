"""The shelf's methods (issue 24) against the peers that have them, on a random-weight resnet18 at two layers.

A seeded resnet18 (10 classes, random weights) explains a batch of 2 images of 64 px, one class per item, at `layer3`
(4x4, followed by a residual stage: its gradients vary over the map) and `layer4` (2x2, followed by global average
pooling and the linear head). fastcam's raw maps (ReLU applied, at the layer's resolution) are compared with
pytorch-grad-cam's raw maps, as its own `get_cam_image` returns them inside a normal call (before it stretches them to
the input's size), after the same per-map min-max scaling of both sides, to 1e-4:

- Grad-CAM element-wise, FEM, Finer-CAM (with pytorch-grad-cam's `FinerWeightedTarget` on the same comparison
  classes), ShapleyCAM on the logits and with the paper's ReST target (`ClassifierOutputReST`, where the
  Hessian-vector product is not zero);
- Eigen-Grad-CAM and KPCA-CAM up to the sign of each map (pytorch-grad-cam takes the sign its SVD or scikit-learn
  returns; fastcam's convention is in nbs/04_methods); KPCA-CAM to 5e-4, since scikit-learn works in float32 on the
  float32 activations pytorch-grad-cam hands it, and to 1e-5 against scikit-learn on float64 points.

SS-CAM and IS-CAM are compared with torchcam (their only peer) on one 48 px image with 2 samples: IS-CAM as it is, SS-CAM
handed the noise torchcam draws (through `SSCAM.noise`), since torchcam draws it from the global random state.

Score-CAM, whose masked forwards run on the CPU on a copy of the model with BatchNorm folded into the convolutions and
ReLUs and residual sums fused into oneDNN kernels, against pytorch-grad-cam's forwards of the model itself (one image,
17 px at layer3 and 33 px at layer4: 2x2 maps, 256 and 512 masks). RefineCAM against torchcam (at the finest layer's
resolution) and pytorch-grad-cam (at the input's: `size=`), with Grad-CAM as the base, where the peers agree with each
other. Seg-Eigen-CAM against pytorch-grad-cam, on the class logits here (a segmentation model's test is in
nbs/04_methods). FullGrad against pytorch-grad-cam, at the input's resolution (it uses every bias, no layer).

RandomCAM has no peer to agree with (pytorch-grad-cam draws from numpy's global state): it is checked for what it
promises, the same maps under the same seed, other maps under another, and the global random state left alone.
"""
import copy
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision.models import resnet18
from fastcam.all import (EigenGradCAM, FEM, FinerCAM, GradCAM, GradCAMElementWise, KPCACAM, RandomCAM, RefineCAM,
                         ScoreCAM, SegEigenCAM, ShapleyCAM, find_layer)

pgc = pytest.importorskip('pytorch_grad_cam')
from pytorch_grad_cam.utils.model_targets import (ClassifierOutputReST, ClassifierOutputTarget,  # noqa: E402
                                                  FinerWeightedTarget)

LAYERS = ['layer3', 'layer4']

@pytest.fixture(scope='module')
def setup():
    torch.manual_seed(0)
    model = resnet18(num_classes=10).eval()
    x = torch.randn(2, 3, 64, 64)
    targets = torch.tensor([[1], [4]])
    return model, x, targets

def minmax(maps):
    lo, hi = maps.amin((-2, -1), keepdim=True), maps.amax((-2, -1), keepdim=True)
    return (maps - lo) / (hi - lo).clamp_min(1e-12)

def peer_maps(peer, model, layer, x, chosen, relu=True, **kwargs):
    "pytorch-grad-cam's raw maps `[bs, 1, h, w]` from its `get_cam_image`, for its targets `chosen`."
    model = copy.deepcopy(model)  # it calls .backward() into the parameters
    cam = peer(model=model, target_layers=[find_layer(model, layer)], **kwargs)
    inner = getattr(cam, 'base_cam', cam)  # FinerCAM wraps a Grad-CAM
    raws, original = [], inner.get_cam_image
    inner.get_cam_image = lambda *a, **k: (raws.append(original(*a, **k)), raws[-1])[1]
    cam(input_tensor=x, targets=chosen)
    inner.activations_and_grads.release()
    raw = torch.from_numpy(np.asarray(raws[0])).float()[:, None]
    return raw.relu() if relu else raw

def assert_agree(ours, theirs, eps=1e-4):
    assert ours.shape == theirs.shape
    gap = (minmax(ours) - minmax(theirs)).abs().max().item()
    assert gap < eps, gap

def assert_agree_up_to_sign(ours, theirs, eps=1e-4):
    same = torch.where((ours * theirs).sum((-2, -1), keepdim=True) > 0, 1., -1.)
    scale = ours.abs().amax((-2, -1), keepdim=True).clamp_min(1e-12)
    gap = ((ours - same * theirs) / scale).abs().max().item()
    assert gap < eps, gap

def classes(targets): return [ClassifierOutputTarget(int(t)) for t in targets[:, 0]]

@pytest.mark.parametrize('layer', LAYERS)
def test_elementwise_and_fem(setup, layer):
    model, x, targets = setup
    assert_agree(GradCAMElementWise(model, layer)(x, targets),
                 peer_maps(pgc.GradCAMElementWise, model, layer, x, classes(targets)))
    assert_agree(FEM(model, layer)(x, targets), peer_maps(pgc.FEM, model, layer, x, classes(targets)))

@pytest.mark.parametrize('layer', LAYERS)
def test_projections(setup, layer):
    model, x, targets = setup
    assert_agree_up_to_sign(EigenGradCAM(model, layer, relu=False)(x, targets),
                            peer_maps(pgc.EigenGradCAM, model, layer, x, classes(targets), relu=False))
    ours = KPCACAM(model, layer, relu=False)(x, targets)
    assert_agree_up_to_sign(ours, peer_maps(pgc.KPCA_CAM, model, layer, x, classes(targets), relu=False), eps=5e-4)
    from sklearn.decomposition import KernelPCA
    A = {}
    handle = find_layer(model, layer).register_forward_hook(lambda m, i, o: A.update(a=o.detach()))
    with torch.no_grad(): model(x)
    handle.remove()
    points = A['a'].flatten(2).transpose(1, 2).double().numpy()
    theirs = [KernelPCA(n_components=1, kernel='sigmoid').fit_transform(p - p.mean(0))[:, 0] for p in points]
    assert_agree_up_to_sign(ours, torch.tensor(np.stack(theirs)).float().view(ours.shape), eps=1e-5)

@pytest.mark.parametrize('layer', LAYERS)
def test_finer_and_shapley(setup, layer):
    model, x, targets = setup
    with torch.no_grad(): logits = model(x)
    order = (logits - logits.gather(1, targets)).abs().argsort(-1)
    finer = [FinerWeightedTarget(int(targets[i, 0]), [int(order[i, r]) for r in (1, 2, 3)], 1.0) for i in range(2)]
    assert_agree(FinerCAM(model, layer)(x, targets), peer_maps(pgc.FinerCAM, model, layer, x, finer))
    assert_agree(ShapleyCAM(model, layer)(x, targets), peer_maps(pgc.ShapleyCAM, model, layer, x, classes(targets)))
    rest = lambda out: (out.gather(1, targets)[:, 0] - F.cross_entropy(out, targets[:, 0], reduction='none'))[:, None]
    shapley = ShapleyCAM(model, layer)(x, target=rest)
    assert_agree(shapley, peer_maps(pgc.ShapleyCAM, model, layer, x, [ClassifierOutputReST(int(t)) for t in targets]))
    assert not torch.allclose(minmax(shapley), minmax(GradCAM(model, layer)(x, target=rest)), atol=1e-3)

def test_random_cam_seeded(setup):
    model, x, targets = setup
    state = torch.get_rng_state()
    first = RandomCAM(model, 'layer3', seed=3)(x, targets)
    assert torch.equal(first, RandomCAM(model, 'layer3', seed=3)(x, targets))
    assert not torch.equal(first, RandomCAM(model, 'layer3', seed=4)(x, targets))
    assert torch.equal(torch.get_rng_state(), state)

@pytest.mark.parametrize('layer', LAYERS)
def test_smoothed_score_cams(setup, layer):
    "SS-CAM (handed torchcam's noise) and IS-CAM against torchcam, on one 48 px image and 2 samples."
    tcm = pytest.importorskip('torchcam.methods')
    from fastcam.all import ISCAM, SSCAM
    model, x, targets = setup
    x, targets = x[:1, :, :48, :48], targets[:1]  # 256 or 512 masks a sample
    def theirs(peer, **kwargs):
        with peer(copy.deepcopy(model), layer, input_shape=tuple(x.shape[1:]), batch_size=64, **kwargs) as extractor:
            scores = extractor.model(x)
            return extractor(targets[:, 0].tolist(), scores, normalized=False)[0].detach()[:, None]
    assert_agree(ISCAM(model, layer, num_samples=2, batch_size=64)(x, targets), theirs(tcm.ISCAM, num_samples=2))
    A = {}
    handle = find_layer(model, layer).register_forward_hook(lambda m, i, o: A.update(a=o))
    with torch.no_grad(): model(x)
    handle.remove()
    torch.manual_seed(11)
    noises = [torch.distributions.Normal(0, 2.).sample((1, A['a'].shape[1], 48, 48)) for _ in range(2)]
    class SameNoise(SSCAM):
        def noise(self, sample, item, channel, size): return noises[sample][item, channel][:, None]
    torch.manual_seed(11)
    peer = theirs(tcm.SSCAM, num_samples=2)
    assert_agree(SameNoise(model, layer, num_samples=2, batch_size=64)(x, targets), peer)
    if layer == 'layer3':
        assert torch.equal(SSCAM(model, layer, num_samples=1, seed=5)(x, targets),
                           SSCAM(model, layer, num_samples=1, seed=5)(x, targets))

@pytest.mark.parametrize('layer', LAYERS)
def test_score_cam_fast_copy(setup, layer):
    "Score-CAM on the folded, fused copy (the CPU's default) against pytorch-grad-cam's forwards of the model."
    model, x, targets = setup
    size = {'layer3': 17, 'layer4': 33}[layer]  # 2x2 maps: 256 and 512 masks
    x, targets = x[:1, :, :size, :size], targets[:1]
    assert_agree(ScoreCAM(model, layer, batch_size=64)(x, targets),
                 peer_maps(pgc.ScoreCAM, model, layer, x, classes(targets)))

def test_refine_cam(setup):
    tcm = pytest.importorskip('torchcam.methods')
    model, x, targets = setup
    ours = RefineCAM(model, LAYERS, base=GradCAM)(x, targets)
    with tcm.RefineCAM(copy.deepcopy(model), LAYERS, input_shape=tuple(x.shape[1:]), base_method=tcm.GradCAM) as cam:
        theirs = cam(targets[:, 0].tolist(), cam.model(x), normalized=False)[0].detach()[:, None]
    assert_agree(ours, theirs)
    twin = copy.deepcopy(model)
    refine = pgc.RefineCAM(twin, [twin.layer3, twin.layer4], base_method=pgc.GradCAM)
    theirs = torch.from_numpy(refine(input_tensor=x, targets=classes(targets)))[:, None]
    assert_agree(RefineCAM(model, LAYERS, base=GradCAM, size=(64, 64))(x, targets), theirs)

@pytest.mark.parametrize('layer', LAYERS)
def test_seg_eigen_cam(setup, layer):
    model, x, targets = setup
    assert_agree(SegEigenCAM(model, layer)(x, targets), peer_maps(pgc.SegEigenCAM, model, layer, x, classes(targets)))

def test_full_grad(setup):
    "FullGrad against pytorch-grad-cam, with BatchNorm biases and statistics drawn so that every layer's term counts."
    from fastcam.all import FullGrad
    model, x, targets = setup
    model = copy.deepcopy(model)
    torch.manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d): m.bias.uniform_(-0.2, 0.2); m.running_mean.uniform_(-0.2, 0.2)
    peer = pgc.FullGrad(copy.deepcopy(model), [])
    theirs = torch.from_numpy(peer(input_tensor=x, targets=classes(targets)))[:, None]
    peer.activations_and_grads.release()
    assert_agree(FullGrad(model)(x, targets), theirs)

def test_shapley_cam_on_a_vit():
    "ShapleyCAM through timm's fused attention (no second derivative) equals plain autograd on the plain attention."
    timm = pytest.importorskip('timm')
    torch.manual_seed(0)
    vit = timm.create_model('vit_tiny_patch16_224', pretrained=False, img_size=32, patch_size=8, depth=2,
                            num_classes=5).eval()
    flags = [m.fused_attn for m in vit.modules() if hasattr(m, 'fused_attn')]
    assert flags and all(flags)  # the fused kernel, whose backward has no derivative
    x, targets = torch.randn(2, 3, 32, 32), torch.tensor([[1], [3]])
    ours = ShapleyCAM(vit)(x, targets)  # the default layer: the last block's norm1, tokens [bs, 1 + 16, 192]
    assert [m.fused_attn for m in vit.modules() if hasattr(m, 'fused_attn')] == flags  # the model as found
    assert torch.backends.cuda.flash_sdp_enabled() and torch.backends.cuda.mem_efficient_sdp_enabled()
    plain = copy.deepcopy(vit)
    for m in plain.modules():
        if hasattr(m, 'fused_attn'): m.fused_attn = False  # attention written out: softmax(q k^T) v
    kept = {}
    handle = plain.blocks[-1].norm1.register_forward_hook(lambda m, i, o: kept.update(t=o))
    logits = plain(x)
    handle.remove()
    T = kept['t']  # [2, 17, 192], in the graph of the whole model
    g = torch.autograd.grad(logits.gather(1, targets).sum(), T, create_graph=True)[0]
    corrected = g - torch.autograd.grad(g, T, grad_outputs=T.detach())[0] / 2
    w = corrected[:, 1:].mean(1)  # [2, 192]: the mean over the 16 patches, the class token left out
    expected = torch.einsum('bc,bnc->bn', w, T[:, 1:]).relu().view(2, 1, 4, 4).detach()
    assert_agree(ours, expected, eps=1e-4)
    assert torch.allclose(ours, expected, atol=1e-6 * expected.abs().max().item())
    assert not torch.allclose(ours, GradCAM(vit)(x, targets), atol=1e-3 * expected.abs().max().item())

def test_masking_methods_refuse_text():
    "Score-CAM, SS-CAM, IS-CAM and Ablation-CAM refuse a text model (fastai's AWD_LSTM, a BERT) before any forward."
    from fastai.text.all import AWD_LSTM, awd_lstm_clas_config, get_text_classifier
    from transformers import BertConfig, BertForSequenceClassification
    from fastcam.all import AblationCAM, ISCAM, SSCAM, cam_method
    torch.manual_seed(0)
    awd = get_text_classifier(AWD_LSTM, 50, 3, config=dict(awd_lstm_clas_config, emb_sz=16, n_hid=32, n_layers=1))
    bert = BertForSequenceClassification(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1,
                                                    num_attention_heads=2, intermediate_size=32, num_labels=3))
    ids = torch.randint(2, 50, (2, 12))
    for model, x, layer in ((awd.eval(), ids, None), (bert.eval(), (ids, torch.ones_like(ids)), 'bert.encoder.layer.0')):
        calls = []
        handle = model.register_forward_hook(lambda *a: calls.append(1))
        for method in (ScoreCAM, SSCAM, ISCAM, AblationCAM):
            with pytest.raises(ValueError, match=f"{method.__name__} .* reads token ids: for text use a gradient "
                                                 f"method at a layer, e.g. method='gradcam'"):
                cam_method(model, method.__name__, layer)(x)
        handle.remove()
        assert calls == []  # refused before any forward
        assert GradCAM(model, layer)(x).shape[:2] == (2, 1)  # what the error points to works
