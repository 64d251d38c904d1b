"""fastcam's maps of 1-D signals and 3-D volumes (issue 22) against a plain-autograd reference and against the peers.

Two tiny seeded classifiers, a `Conv1d` one on `[bs, 3, 64]` and a `Conv3d` one on `[bs, 1, 8, 16, 16]`, are explained
at two layers each: `'3'`, followed by a convolution (its gradients vary over the map, as inside a real network), and
`'6'`, followed by global average pooling and the linear head (its gradients are constant over the map). A batch of 3
items asks for 2 classes each, a repeated class included.

- **The reference** is written here from the papers' formulas with plain autograd: the whole graph from the input on,
  and one `torch.autograd.grad` per class. fastcam's raw maps (ReLU applied, not normalized, at the layer's
  resolution) must equal it to 1e-5, relative to each map's largest value, for every gradient method on each rank.
  Score-CAM's reference masks the input with each channel upsampled ((tri)linearly, corners not aligned off images)
  then scaled to [0, 1], and weights the channels by the softmax of the masked scores.
- **Alone as in the batch**: an item's map must not depend on its neighbours (tsai's `get_attribution_map` averages
  the gradients over the batch, so its maps do; a test shows that this check catches it).
- **The peers**, at the layer's resolution:
  - captum's `LayerGradCam` (Grad-CAM) returns the raw map at the layer's resolution, any rank, ReLU on request, not
    normalized; its `LayerGradientXActivation` gives `g * A` per channel, whose channel sum is HiResCAM. Both are
    compared raw, to 1e-5 relative (they measure 0 here: the same graph, the same arithmetic).
  - torchcam and pytorch-grad-cam after the same per-map min-max scaling of both sides.
  - torchcam (`torchcam.methods`) returns raw maps at the layer's resolution with `normalized=False`, any rank. Its
    Grad-CAM++ is not the paper's Eq. 19 (its `alpha[mask].div_` divides a copy, so `alpha` stays `g**2`, see
    nbs/04_methods): it is checked against that formula run through fastcam's engine, and fastcam's Grad-CAM++ against
    the reference and pytorch-grad-cam. Its Score-CAM scales each activation map to [0, 1] *before* upsampling
    (trilinear, corners not aligned) and fails on 1-D inputs (it asks `F.interpolate` for 'nearest' with
    `align_corners=False`); on 3-D it is checked against fastcam's Score-CAM with torchcam's masks.
  - pytorch-grad-cam maps 3-D but not 1-D (its `get_target_width_height` and `get_cam_image` accept 4-D and 5-D
    tensors only); it stretches its maps to the input's size (`scipy.ndimage.zoom` for volumes) after a min-max, so
    its raw maps are taken before that, from its own activations, gradients and `get_cam_image`. Its Score-CAM
    upsamples with `UpsamplingBilinear2d`, 2-D only.
"""
import copy
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from fastcam.all import CAMMethod, GradCAM, ScoreCAM, method_by_name

GRADIENT_METHODS = ['gradcam', 'gradcam++', 'xgradcam', 'hirescam', 'layercam']
RANKS = {1: (3, 64), 3: (1, 8, 16, 16)}  # spatial rank -> one item's shape
SEEDS = {1: 0, 3: 3}  # seeds whose reference maps all vary at both layers (a map ReLU zeroes would compare vacuously)
TARGETS = torch.tensor([[0, 3], [1, 1], [4, 2]])  # two classes per item, a repeat included


# --- the models -------------------------------------------------------------------------------------------------
def make_model(rank: int, scale: float = 1.0, n_classes: int = 5) -> nn.Sequential:
    "A small random-weight classifier on `rank`-D inputs; `scale` multiplies the head's weights (and all gradients)."
    Conv, BatchNorm, Pool = {1: (nn.Conv1d, nn.BatchNorm1d, nn.AdaptiveAvgPool1d),
                             3: (nn.Conv3d, nn.BatchNorm3d, nn.AdaptiveAvgPool3d)}[rank]
    c_in = RANKS[rank][0]
    torch.manual_seed(SEEDS[rank])
    model = nn.Sequential(Conv(c_in, 8, 3, padding=1), nn.ReLU(),
                          Conv(8, 16, 3, stride=2, padding=1), nn.ReLU(),  # '3': a convolution follows
                          Conv(16, 16, 3, padding=1), BatchNorm(16), nn.ReLU(),  # '6': pooling and the head follow
                          Pool(1), nn.Flatten(), nn.Linear(16, n_classes))
    with torch.no_grad():
        model[5].running_mean.uniform_(-0.2, 0.2)
        model[5].running_var.uniform_(0.5, 2)
        model[9].weight.mul_(scale)
    return model.eval()

def make_batch(rank: int, bs: int = 3, seed: int = 1) -> torch.Tensor:
    torch.manual_seed(seed)
    return torch.randn(bs, *RANKS[rank])


# --- the plain reference ----------------------------------------------------------------------------------------
def _spatial(t: torch.Tensor) -> tuple: return tuple(range(2, t.ndim))

def _gradcam(A, g): return (g.mean(_spatial(g), keepdim=True) * A).sum(1)

def _gradcam_plusplus(A, g):
    "Chattopadhay et al. 2018, Eq. 19: alpha = g^2 / (2 g^2 + sum_ab A_ab g^3), weights sum alpha relu(g)."
    g2, g3 = g ** 2, g ** 3
    denominator = 2 * g2 + A.sum(_spatial(A), keepdim=True) * g3
    alpha = torch.where(denominator != 0, g2 / torch.where(denominator != 0, denominator, 1), 0)
    return ((alpha * g.relu()).sum(_spatial(g), keepdim=True) * A).sum(1)

def _xgradcam(A, g):
    "Fu et al. 2020: weights sum_ij (A_ij / sum_ab A_ab) g_ij; a channel that is zero everywhere weighs nothing."
    total = A.sum(_spatial(A), keepdim=True)
    return ((g * A / torch.where(total != 0, total, 1)).sum(_spatial(g), keepdim=True) * A).sum(1)

def _hirescam(A, g): return (g * A).sum(1)
def _layercam(A, g): return (g.relu() * A).sum(1)

FORMULAS = {'gradcam': _gradcam, 'gradcam++': _gradcam_plusplus, 'xgradcam': _xgradcam, 'hirescam': _hirescam,
            'layercam': _layercam}

def reference_maps(model: nn.Module, layer: str, x: torch.Tensor, targets: torch.Tensor, method: str) -> torch.Tensor:
    "Maps `[bs, k, *spatial]`: the whole graph from the input, one `autograd.grad` per class, the paper's formula."
    kept = {}
    handle = dict(model.named_modules())[layer].register_forward_hook(lambda m, i, o: kept.update(a=o))
    try:
        with torch.enable_grad(): logits = model(x.clone().requires_grad_())
    finally: handle.remove()
    A = kept['a']
    maps = []
    for j in range(targets.shape[1]):
        g, = torch.autograd.grad(logits.gather(1, targets[:, j:j + 1]).sum(), A, retain_graph=True)
        maps.append(FORMULAS[method](A.detach(), g).relu())
    return torch.stack(maps, 1)

def reference_scorecam(model: nn.Module, layer: str, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    "Score-CAM (Wang et al. 2020, Alg. 1): each channel upsampled then scaled to [0, 1] masks `x`; softmax of scores."
    kept = {}
    handle = dict(model.named_modules())[layer].register_forward_hook(lambda m, i, o: kept.update(a=o))
    try:
        with torch.no_grad(): model(x)
    finally: handle.remove()
    A = kept['a']  # [bs, C, *spatial]
    mode = {1: 'linear', 2: 'bilinear', 3: 'trilinear'}[A.ndim - 2]
    corners = A.ndim == 4  # fastcam's convention: aligned on images (as pytorch-grad-cam), not on signals and volumes
    maps = []
    with torch.no_grad():
        for i in range(len(x)):
            up = F.interpolate(A[i][:, None], size=x.shape[2:], mode=mode, align_corners=corners)  # [C, 1, *input]
            lo, hi = up.amin(_spatial(up), keepdim=True), up.amax(_spatial(up), keepdim=True)
            masks = torch.where(hi > lo, (up - lo) / torch.where(hi > lo, hi - lo, 1), 0)
            scores = model(x[i] * masks)[:, targets[i]]  # [C, k]
            maps.append(torch.einsum('ck,c...->k...', scores.softmax(0), A[i]).relu())
    return torch.stack(maps)


# --- comparisons ------------------------------------------------------------------------------------------------
def minmax(maps: torch.Tensor, rank: int) -> torch.Tensor:
    "Each map of `maps` `[..., *spatial]` scaled to [0, 1] over its last `rank` axes; a constant map becomes 0."
    dims = tuple(range(-rank, 0))
    lo, hi = maps.amin(dims, keepdim=True), maps.amax(dims, keepdim=True)
    return (maps - lo) / (hi - lo).clamp_min(1e-12)

def relative_gap(ours: torch.Tensor, theirs: torch.Tensor, rank: int) -> float:
    "The largest difference of two sets of maps, relative to each map's largest value (floored at 1e-6 of all)."
    assert ours.shape == theirs.shape, f"shapes differ: {tuple(ours.shape)} vs {tuple(theirs.shape)}"
    dims = tuple(range(-rank, 0))
    scale = theirs.abs().amax(dims, keepdim=True).clamp_min(1e-6 * theirs.abs().max().item() + 1e-30)
    return ((ours - theirs).abs() / scale).max().item()

def scaled_gap(ours: torch.Tensor, theirs: torch.Tensor, rank: int) -> float:
    "The largest difference after min-max scaling each map of both sides."
    assert ours.shape == theirs.shape, f"shapes differ: {tuple(ours.shape)} vs {tuple(theirs.shape)}"
    return (minmax(ours, rank) - minmax(theirs, rank)).abs().max().item()

def _informative(maps: torch.Tensor, rank: int) -> bool:
    "Whether every map varies (a map ReLU zeroed everywhere would make any comparison after min-max vacuous)."
    flat = maps.flatten(-rank)
    return bool((flat.amax(-1) > flat.amin(-1)).all())


# --- fastcam against the reference ------------------------------------------------------------------------------
@pytest.mark.parametrize('rank', list(RANKS))
@pytest.mark.parametrize('method', GRADIENT_METHODS)
@pytest.mark.parametrize('layer', ['3', '6'])
def test_equals_plain_autograd_reference(rank, method, layer):
    model, x = make_model(rank), make_batch(rank)
    res = method_by_name(method)(model, layer).compute(x, cls=TARGETS)
    ref = reference_maps(model, layer, x, TARGETS, method)
    assert res.maps.shape == (3, 2, *ref.shape[2:]), res.maps.shape
    assert res.maps.dtype == torch.float32
    assert torch.equal(res.targets, TARGETS)
    assert _informative(ref, rank), "a reference map is flat: the comparison would be vacuous"
    gap = relative_gap(res.maps, ref, rank)
    assert gap <= 1e-5, f"{method} at {layer!r}, rank {rank}: {gap:.2e} from the plain reference (relative)"

@pytest.mark.parametrize('rank', list(RANKS))
@pytest.mark.parametrize('method', GRADIENT_METHODS)
def test_same_alone_as_in_the_batch(rank, method):
    "Each item's maps alone equal its maps in the batch: no statistic crosses items."
    model, x = make_model(rank), make_batch(rank)
    cam = method_by_name(method)(model, '3')
    batch = cam(x, cls=TARGETS)
    for i in range(len(x)):
        alone = cam(x[i:i + 1], cls=TARGETS[i:i + 1])
        gap = relative_gap(alone[0], batch[i], rank)
        assert gap <= 1e-5, f"{method}, rank {rank}: item {i} alone differs from the batch by {gap:.2e}"

@pytest.mark.parametrize('rank', list(RANKS))
def test_batch_averaged_gradients_fail_the_check(rank):
    "The check above can fail: Grad-CAM with the gradients averaged over the batch (tsai's `get_attribution_map`)."
    model, x = make_model(rank), make_batch(rank)
    kept = {}
    handle = model[3].register_forward_hook(lambda m, i, o: kept.update(a=o))
    try:
        with torch.enable_grad(): logits = model(x)
    finally: handle.remove()
    g, = torch.autograd.grad(logits.gather(1, TARGETS[:, :1]).sum(), kept['a'])
    averaged = _gradcam(kept['a'].detach(), g.mean(0, keepdim=True)).relu()[:, None]  # [bs, 1, *spatial]
    assert relative_gap(averaged, GradCAM(model, '3')(x, cls=TARGETS[:, :1]), rank) > 1e-2

@pytest.mark.parametrize('rank', list(RANKS))
def test_scorecam_equals_plain_reference(rank):
    model, x = make_model(rank), make_batch(rank)
    ours = ScoreCAM(model, '3', batch_size=7)(x, cls=TARGETS)
    ref = reference_scorecam(model, '3', x, TARGETS)
    gap = relative_gap(ours, ref, rank)
    assert gap <= 1e-5, f"Score-CAM, rank {rank}: {gap:.2e} from the plain reference"


# --- the peers --------------------------------------------------------------------------------------------------
def captum_gradcam(model, layer, x, targets):
    "captum's `LayerGradCam` maps `[bs, k, *spatial]`, one call per class (it takes one target per item)."
    from captum.attr import LayerGradCam
    module = dict(model.named_modules())[layer]
    return torch.stack([LayerGradCam(model, module).attribute(x, target=targets[:, j].tolist(), relu_attributions=True)
                        [:, 0].detach() for j in range(targets.shape[1])], 1)

def captum_hirescam(model, layer, x, targets):
    "HiResCAM from captum's `LayerGradientXActivation`: `g * A` per channel, summed over the channels, ReLU."
    from captum.attr import LayerGradientXActivation
    module = dict(model.named_modules())[layer]
    return torch.stack([LayerGradientXActivation(model, module).attribute(x, target=targets[:, j].tolist())
                        .sum(1).relu().detach() for j in range(targets.shape[1])], 1)

def torchcam_maps(name, model, layer, x, targets, **kwargs):
    "torchcam's raw maps `[bs, k, *spatial]` (`normalized=False`: ReLU applied, not scaled), one call per class."
    tcm = pytest.importorskip('torchcam.methods')
    model = copy.deepcopy(model)  # torchcam hooks the model it is given
    maps = []
    for j in range(targets.shape[1]):
        with getattr(tcm, name)(model, layer, input_shape=tuple(x.shape[1:]), **kwargs) as extractor:
            scores = model(x)
            maps.append(extractor(targets[:, j].tolist(), scores, normalized=False)[0].detach())
    return torch.stack(maps, 1)

def pgc_maps(name, model, layer, x, targets):
    "pytorch-grad-cam's raw maps `[bs, k, *spatial]`: its activations, gradients and `get_cam_image`, one call a class."
    pgc = pytest.importorskip('pytorch_grad_cam')
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    model = copy.deepcopy(model)  # pytorch-grad-cam calls .backward() into param.grad
    module = dict(model.named_modules())[layer]
    maps = []
    for j in range(targets.shape[1]):
        cam = getattr(pgc, name)(model=model, target_layers=[module])
        chosen = [ClassifierOutputTarget(int(t)) for t in targets[:, j]]
        cam(input_tensor=x, targets=chosen)  # fills its activations and gradients; its output is stretched to x
        stored = cam.activations_and_grads
        acts, grads = stored.activations[0].numpy(), stored.gradients[0].numpy()
        raw = np.asarray(cam.get_cam_image(x, module, chosen, acts, grads, False))
        stored.release()
        maps.append(torch.from_numpy(raw).float().relu())
    return torch.stack(maps, 1)

class _TorchcamGradCAMpp(CAMMethod):
    "What torchcam's `GradCAMpp` computes (weights sum g^2 relu(g)), run through fastcam's engine."
    def weights(self, A, G): return (G ** 2 * G.relu()).flatten(3).sum(-1)  # [bs, k, C]

@pytest.mark.parametrize('rank', list(RANKS))
@pytest.mark.parametrize('layer', ['3', '6'])
def test_gradcam_equals_captum(rank, layer):
    pytest.importorskip('captum')
    model, x = make_model(rank), make_batch(rank)
    ours = GradCAM(model, layer)(x, cls=TARGETS)
    theirs = captum_gradcam(model, layer, x, TARGETS)
    assert _informative(theirs, rank)
    gap = relative_gap(ours, theirs, rank)  # both raw, at the layer's resolution: equal before any scaling
    assert gap <= 1e-5, f"Grad-CAM at {layer!r}, rank {rank}: {gap:.2e} from captum's LayerGradCam (relative)"

@pytest.mark.parametrize('rank', list(RANKS))
@pytest.mark.parametrize('layer', ['3', '6'])
def test_hirescam_equals_captum_gradient_x_activation(rank, layer):
    pytest.importorskip('captum')
    model, x = make_model(rank), make_batch(rank)
    ours = method_by_name('hirescam')(model, layer)(x, cls=TARGETS)
    gap = relative_gap(ours, captum_hirescam(model, layer, x, TARGETS), rank)
    assert gap <= 1e-5, f"HiResCAM at {layer!r}, rank {rank}: {gap:.2e} from captum's gradient x activation (relative)"

@pytest.mark.parametrize('rank', list(RANKS))
@pytest.mark.parametrize('layer', ['3', '6'])
@pytest.mark.parametrize('method,peer', [('gradcam', 'GradCAM'), ('xgradcam', 'XGradCAM'), ('layercam', 'LayerCAM')])
def test_agrees_with_torchcam(rank, layer, method, peer):
    model, x = make_model(rank), make_batch(rank)
    theirs = torchcam_maps(peer, model, layer, x, TARGETS)
    ours = method_by_name(method)(model, layer)(x, cls=TARGETS)
    assert _informative(theirs, rank)
    gap = scaled_gap(ours, theirs, rank)
    assert gap <= 1e-5, f"{method} at {layer!r}, rank {rank}: {gap:.2e} from torchcam after min-max"

@pytest.mark.parametrize('rank', list(RANKS))
@pytest.mark.parametrize('layer', ['3', '6'])
def test_torchcam_gradcampp_is_its_own_formula(rank, layer):
    "torchcam's Grad-CAM++ equals sum g^2 relu(g) run through fastcam's engine, and differs from Eq. 19 (ours)."
    model, x = make_model(rank), make_batch(rank)
    theirs = torchcam_maps('GradCAMpp', model, layer, x, TARGETS)
    assert scaled_gap(_TorchcamGradCAMpp(model, layer)(x, cls=TARGETS), theirs, rank) <= 1e-5
    if layer == '3':  # where the gradient varies over the map, alpha matters: the two formulas give other maps
        assert scaled_gap(method_by_name('gradcam++')(model, layer)(x, cls=TARGETS), theirs, rank) > 1e-3

@pytest.mark.parametrize('layer', ['3', '6'])
@pytest.mark.parametrize('method,peer', [('gradcam', 'GradCAM'), ('gradcam++', 'GradCAMPlusPlus'),
                                         ('xgradcam', 'XGradCAM'), ('hirescam', 'HiResCAM'), ('layercam', 'LayerCAM')])
def test_agrees_with_pytorch_grad_cam_on_volumes(layer, method, peer):
    # a head scaled up: pytorch-grad-cam's Grad-CAM++ adds 1e-6 to 2 g^2 + S g^3, which moves it off Eq. 19 where g^2
    # is not much larger than that (a gap of 0.3 at this model's own scale, 1e-4 at 1e3, 1e-5 at 1e4)
    model, x = make_model(3, scale=1e4 if method == 'gradcam++' else 1.), make_batch(3)
    theirs = pgc_maps(peer, model, layer, x, TARGETS)
    ours = method_by_name(method)(model, layer)(x, cls=TARGETS)
    assert _informative(theirs, 3)
    gap = scaled_gap(ours, theirs, 3)
    assert gap <= 1e-4, f"{method} at {layer!r}: {gap:.2e} from pytorch-grad-cam after min-max"

def test_pytorch_grad_cam_has_no_1d():
    "pytorch-grad-cam refuses 1-D signals (the reason its comparisons above are on volumes only)."
    pgc = pytest.importorskip('pytorch_grad_cam')
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    model, x = make_model(1), make_batch(1)
    with pytest.raises(ValueError, match='Only 2D or 3D'):
        pgc.GradCAM(model=model, target_layers=[model[3]])(input_tensor=x, targets=[ClassifierOutputTarget(0)] * 3)

class _TorchcamMasksScoreCAM(ScoreCAM):
    "fastcam's Score-CAM with torchcam's masks: each map scaled to [0, 1], then upsampled without aligned corners."
    def masks(self, A, size):
        dims = tuple(range(1, A.ndim))
        lo, hi = A.amin(dims, keepdim=True), A.amax(dims, keepdim=True)
        scaled = (A - lo) / (hi - lo + 1e-8)  # torchcam's _normalize
        mode = {1: 'linear', 2: 'bilinear', 3: 'trilinear'}[A.ndim - 1]
        return F.interpolate(scaled[:, None], size=tuple(size), mode=mode, align_corners=False)

def test_scorecam_agrees_with_torchcam_on_volumes():
    "With torchcam's masks, fastcam's scores, softmax and weighted sum give torchcam's Score-CAM maps."
    model, x = make_model(3), make_batch(3)
    theirs = torchcam_maps('ScoreCAM', model, '3', x, TARGETS, batch_size=16)
    ours = _TorchcamMasksScoreCAM(model, '3', batch_size=16)(x, cls=TARGETS)
    assert _informative(theirs, 3)
    gap = scaled_gap(ours, theirs, 3)
    assert gap <= 1e-4, f"Score-CAM with torchcam's masks: {gap:.2e} from torchcam after min-max"
