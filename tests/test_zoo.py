"""The zoo: every family of model a fastai user trains, plain and through `vision_learner`, random weights, small
inputs. Each map is checked against an independent Grad-CAM written here with plain autograd on the full graph, one
backward per class; and the model must be left as found. Run `python tests/test_zoo.py` for the table of the note
(family, default layer chosen, map size, max deviation from the reference, seconds)."""
import time, warnings
import pytest, torch
from torch import nn
import fastcam  # noqa: F401  (registers the method family)
from fastcam.all import GradCAM, default_layer, layer_name, unwrap_model

timm = pytest.importorskip('timm')
from timm.models.swin_transformer import SwinTransformer  # noqa: E402
import torchvision.models as tvm  # noqa: E402

warnings.filterwarnings('ignore', category=UserWarning)


# --- the independent reference --------------------------------------------------------------------------------------
def to_nchw(t: torch.Tensor, layout) -> torch.Tensor:
    "Tokens or channels-last to [bs, C, h, w], written independently of fastcam's reshapes."
    if layout is None: return t
    if layout == 'nhwc': return t.permute(0, 3, 1, 2)
    prefix, h, w = layout
    return t[:, prefix:].reshape(t.shape[0], h, w, t.shape[-1]).permute(0, 3, 1, 2)

def reference_gradcam(model, layer, x, targets, layout):
    "Grad-CAM with the full graph (grad on from the input), a forward hook, and one backward per class."
    kept = {}
    def keep(m, i, o):
        kept['a'] = o
        return o.clone()  # the model may change its output in place (densenet): differentiate the kept tensor
    handle = layer.register_forward_hook(keep)
    try:
        with torch.enable_grad():
            logits = model(x)
            maps = []
            for j in range(targets.shape[1]):
                score = logits.gather(1, targets[:, j:j + 1]).sum()
                g, = torch.autograd.grad(score, kept['a'], retain_graph=True)
                A, G = to_nchw(kept['a'].detach(), layout).float(), to_nchw(g, layout).float()
                maps.append((G.mean((-2, -1), keepdim=True) * A).sum(1).relu())
    finally:
        handle.remove()
    return torch.stack(maps, 1)


# --- the zoo --------------------------------------------------------------------------------------------------------
def _vit(**kw): return timm.create_model('vit_tiny_patch16_224', pretrained=False, img_size=64, num_classes=5, **kw)

PLAIN = {  # name -> (constructor, expected default layer, layout for the reference)
    'resnet18 (torchvision)': (lambda: tvm.resnet18(num_classes=5), 'layer4', None),
    'resnext50_32x4d (torchvision)': (lambda: tvm.resnext50_32x4d(num_classes=5), 'layer4', None),
    'densenet121 (torchvision)': (lambda: tvm.densenet121(num_classes=5), 'features', None),
    'mobilenet_v3_small (torchvision)': (lambda: tvm.mobilenet_v3_small(num_classes=5), 'features', None),
    'efficientnet_b0 (torchvision)': (lambda: tvm.efficientnet_b0(num_classes=5), 'features', None),
    'regnet_y_400mf (torchvision)': (lambda: tvm.regnet_y_400mf(num_classes=5), 'trunk_output', None),
    'convnext_atto (timm)': (lambda: timm.create_model('convnext_atto', pretrained=False, num_classes=5),
                             'stages', None),
    'vit_tiny (timm, class token)': (_vit, 'blocks.11.norm1', (1, 4, 4)),
    'vit_tiny + 4 registers (timm)': (lambda: _vit(reg_tokens=4), 'blocks.11.norm1', (5, 4, 4)),
    'deit_tiny_distilled (timm)': (lambda: timm.create_model('deit_tiny_distilled_patch16_224', pretrained=False,
                                                             img_size=64, num_classes=5), 'blocks.11.norm1', (2, 4, 4)),
    'vit (torchvision)': (lambda: tvm.VisionTransformer(image_size=64, patch_size=16, num_layers=2, num_heads=2,
                                                       hidden_dim=32, mlp_dim=64, num_classes=5),
                          'encoder.layers.encoder_layer_1.ln_1', (1, 4, 4)),
    'swin (timm, channels-last)': (lambda: SwinTransformer(img_size=64, patch_size=4, window_size=4, embed_dim=16,
                                                           depths=(1, 1), num_heads=(1, 2), num_classes=5),
                                   'norm', 'nhwc'),
}

def _snapshot(m): return {k: v.clone() for k, v in m.state_dict().items()}
def _count_hooks(m):
    return sum(len(l._forward_hooks) + len(l._forward_pre_hooks) + len(l._backward_hooks) for l in m.modules())

def check_model(model: nn.Module, x: torch.Tensor, layer_expected: str, layout, k: int = 3) -> dict:
    "Default layer, maps against the reference, and the model left as found. Returns a row of the zoo table."
    start = time.perf_counter()
    model.train()  # maps run in eval mode and must restore this
    first = next(p for p in model.parameters())
    first.grad = torch.ones_like(first)  # a stale .grad must stay as it was
    before, hooks = _snapshot(model), _count_hooks(model)
    calls = []
    counter = model.register_forward_hook(lambda *a: calls.append(1))
    method = GradCAM(model)
    res = method.compute(x, topk=k)
    counter.remove()
    name = layer_name(unwrap_model(model), method.layers[0])
    assert name.endswith(layer_expected), f"default layer {name!r}, expected {layer_expected!r}"
    assert len(calls) == 2 if default_layer_needs_run(model) else len(calls) == 1, f"{len(calls)} forwards"
    assert _count_hooks(model) == hooks, "a hook was left on the model"
    assert all(m.training for m in model.modules()), "modes not restored"
    assert [k_ for k_, v in _snapshot(model).items() if not torch.equal(v, before[k_])] == [], "state changed"
    assert torch.equal(first.grad, torch.ones_like(first)), ".grad touched"
    model.eval()
    ref = reference_gradcam(model, method.layers[0], x, res.targets, layout)
    deviation = ((res.maps - ref).abs().max() / ref.abs().max().clamp_min(1e-12)).item()
    assert res.maps.shape == ref.shape, (res.maps.shape, ref.shape)
    assert deviation < 1e-4, f"max deviation from the reference {deviation:.2e}"
    first.grad = None
    return dict(layer=name, map=tuple(res.maps.shape[-2:]), deviation=deviation,
                seconds=time.perf_counter() - start)

def default_layer_needs_run(model) -> bool:
    "Whether the default layer is found by running the model once on one item (plain CNNs), before the map's forward."
    return default_layer(model)[0] is None  # without a batch, default_layer knows the layer of every other model

@pytest.mark.parametrize('family', list(PLAIN))
def test_plain_model(family):
    make, layer, layout = PLAIN[family]
    torch.manual_seed(0)
    check_model(make(), torch.randn(2, 3, 64, 64), layer, layout)


# --- through vision_learner ----------------------------------------------------------------------------------------
LEARNERS = {  # arch -> (vision_learner kwargs, expected default layer, layout)
    'resnet18': (dict(), '0', None),
    'densenet121': (dict(), '0', None),
    'convnext_atto': (dict(), '0', None),
    'vit_tiny_patch16_224': (dict(img_size=64), '0.model.blocks.11.norm1', (1, 4, 4)),
}

@pytest.fixture(scope='module')
def dls(tmp_path_factory):
    from fastcam.data import make_digits, digits_dls
    path = tmp_path_factory.mktemp('zoo')
    make_digits(path, n_train=100, n_valid=8)
    return digits_dls(path, bs=8)

def _learner(dls, arch):
    from fastai.vision.all import vision_learner
    kwargs, _, _ = LEARNERS[arch]
    arch_fn = getattr(tvm, arch) if arch in ('resnet18', 'densenet121') else arch
    return vision_learner(dls, arch_fn, pretrained=False, **kwargs)

@pytest.mark.parametrize('arch', list(LEARNERS))
def test_vision_learner(dls, arch):
    import fastcam.learner  # noqa: F401
    torch.manual_seed(0)
    learn = _learner(dls, arch)
    _, layer, layout = LEARNERS[arch]
    x = learn.cam_batch([0, 1])
    check_model(learn.model, x, layer, layout)
    res, _ = learn.cam_result([0, 1], topk=2, method='gradcam')
    method = GradCAM(learn.model)
    method(x)  # resolves the default layer
    ref = reference_gradcam(learn.model.eval(), method.layers[0], x, res.targets, layout)
    torch.testing.assert_close(res.maps, ref, rtol=1e-4, atol=1e-6 * ref.abs().max().item())
    ax = learn.show_cam(0)  # no arguments: the default layer and reshape are right for every family
    assert len(ax.images) == 2


def test_vit_learner_no_longer_maps_attention_internals(dls):
    "The silent wrong map of the issue: a ViT learner's default was a [bs, heads, tokens, head_dim] tensor."
    import fastcam.learner  # noqa: F401
    learn = _learner(dls, 'vit_tiny_patch16_224')
    assert learn.cam([0, 1], topk=2).shape == (2, 2, 4, 4)  # the 4x4 patch grid, not [2, 2, 17, 64]


# --- wrapped models, through every entry point ------------------------------------------------------------------
def test_wrapped_models_give_the_plain_maps(dls, tmp_path):
    import fastcam.learner  # noqa: F401
    from fastcam.learner import cam_learner
    from fastcam.interpret import CAMInterpretation
    from fastcam.callback import CAMCallback
    torch.manual_seed(0)
    learn = cam_learner(dls)
    learn.path = tmp_path
    items = [0, 1, 2]
    plain = learn.cam(items, topk=3, method='gradcam')
    plain_cam = learn.cam(items, method='cam')
    plain_interp = CAMInterpretation.from_learner(learn, method='gradcam')
    model = learn.model
    wrappers = {'compiled': torch.compile(model, backend='eager'), 'DataParallel': nn.DataParallel(model)}
    for name, wrapped in wrappers.items():
        learn.model = wrapped
        torch.testing.assert_close(learn.cam(items, topk=3, method='gradcam'), plain, rtol=0, atol=1e-6)
        torch.testing.assert_close(learn.cam(items, method='cam'), plain_cam, rtol=0, atol=1e-6)
        interp = CAMInterpretation.from_learner(learn, method='gradcam')
        torch.testing.assert_close(interp.maps, plain_interp.maps, rtol=0, atol=1e-6)
    learn.model = model
    half = learn.cam(items, topk=3, method='gradcam')
    learn.model = model.to(torch.bfloat16)  # a model converted to bfloat16: its maps within bf16's tolerance
    try:
        low = learn.cam(items, topk=3, method='gradcam')
        assert low.dtype == torch.float32
        scale = half.abs().max().item()
        assert (low - half).abs().max().item() < 0.1 * scale
    finally:
        learn.model = model.float()
    learn.create_opt()  # fastai's splitter indexes the plain model (model[0]); a compiled one cannot be split
    learn.model = torch.compile(model, backend='eager')
    cb = CAMCallback(items=[0, 1], method='gradcam', cls='pred', fname=None)
    learn.fit(1, 1e-4, cbs=cb)
    learn.model = model
    torch.testing.assert_close(cb.history[1], learn.cam([0, 1], method='gradcam').cpu(), rtol=0, atol=1e-6)


if __name__ == '__main__':  # the zoo table of the issue note
    torch.set_num_threads(2)
    print("| family | default layer | map | max deviation | seconds |\n|---|---|---|---|---|")
    for family, (make, layer, layout) in PLAIN.items():
        torch.manual_seed(0)
        row = check_model(make(), torch.randn(2, 3, 64, 64), layer, layout)
        print(f"| {family} | `{row['layer']}` | {row['map'][0]}x{row['map'][1]} | {row['deviation']:.1e} | "
              f"{row['seconds']:.2f} |")
