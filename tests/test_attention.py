"""Attention rollout and LeGrad (`nbs/17_attention.ipynb`) against independent references: rollout written here with
explicit loops over items, blocks and tokens from attention computed by hand (softmax(q k^T / sqrt(d)) from each
block's qkv), on timm ViTs that read their class token, average their patches, or carry registers, for the three head
fusions; LeGrad against torchcam 0.5's `LeGrad` on a torchvision ViT (torchcam reads only nn.MultiheadAttention); and
both through a plain fastai `Learner` around a timm ViT (`learn.cam`, `show_cam`), leaving the model as found."""
import math, warnings
import pytest, torch
from fastcam.all import AttentionRollout, LeGrad, cam_method, has_hooks, make_digits, digits_dls, normalize_maps

timm = pytest.importorskip('timm')
from torchvision.models import VisionTransformer  # noqa: E402

warnings.filterwarnings('ignore', category=UserWarning)
warnings.filterwarnings('ignore', category=FutureWarning)


def tiny_vit(**kw):
    torch.manual_seed(0)
    return timm.create_model('vit_tiny_patch16_224', pretrained=False, img_size=32, patch_size=8, depth=3,
                             num_classes=3, **kw).eval()

def hand_attention(vit, x):
    "Each block's attention [bs, heads, N, N] from its qkv projection, by hand."
    kept = []
    def hook(module, inputs, output):
        q, k, _ = module.qkv(inputs[0]).unflatten(-1, (3, module.num_heads, -1)).permute(2, 0, 3, 1, 4)
        kept.append((q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(-1))
    handles = [b.attn.register_forward_hook(hook) for b in vit.blocks]
    try:
        with torch.no_grad(): vit(x)
    finally:
        for h in handles: h.remove()
    return kept

def loop_rollout(attentions, rows, prefix, fusion):
    "Rollout with explicit loops: per item, per block, per token; the classifier's rows, the patches' columns."
    bs, heads, N, _ = attentions[0].shape
    out = torch.zeros(bs, N - prefix)
    for b in range(bs):
        R = [[float(i == j) for j in range(N)] for i in range(N)]
        for A in attentions:
            fused = [[0.] * N for _ in range(N)]
            for i in range(N):
                for j in range(N):
                    values = [float(A[b, h, i, j]) for h in range(heads)]
                    fused[i][j] = {'mean': sum(values) / heads, 'max': max(values), 'min': min(values)}[fusion]
                fused[i][i] += 1.
                total = sum(fused[i])
                fused[i] = [v / total for v in fused[i]]
            R = [[sum(fused[i][m] * R[m][j] for m in range(N)) for j in range(N)] for i in range(N)]
        for j in range(prefix, N): out[b, j - prefix] = sum(R[i][j] for i in rows) / len(rows)
    return out.unflatten(-1, (4, 4))

@pytest.mark.parametrize('kw, rows, prefix, fusion', [
    ({}, [0], 1, 'mean'), ({}, [0], 1, 'max'), ({}, [0], 1, 'min'),
    (dict(global_pool='avg', class_token=False), range(16), 0, 'mean'),
    (dict(reg_tokens=2), [0], 3, 'mean')])
def test_rollout_equals_loops(kw, rows, prefix, fusion):
    vit = tiny_vit(**kw)
    x = torch.randn(2, 3, 32, 32)
    expected = loop_rollout(hand_attention(vit, x), list(rows), prefix, fusion)
    fused = [b.attn.fused_attn for b in vit.blocks]
    maps = AttentionRollout(vit, head_fusion=fusion)(x, topk=2)
    torch.testing.assert_close(maps[:, 0], expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(maps[:, 1], expected, atol=1e-5, rtol=0)  # class-agnostic
    assert [b.attn.fused_attn for b in vit.blocks] == fused and not has_hooks(vit) and not vit.training

def tiny_torchvision_vit():
    torch.manual_seed(0)
    vit = VisionTransformer(image_size=32, patch_size=8, num_layers=3, num_heads=2, hidden_dim=16, mlp_dim=32,
                            num_classes=4)
    torch.nn.init.normal_(vit.heads.head.weight)  # torchvision starts the head at zero: every gradient would be 0
    return vit.eval()

@pytest.mark.parametrize('last', [3, 2])
def test_legrad_equals_torchcam(last):
    from torchcam.methods import LeGrad as TorchcamLeGrad
    vit, x, cls = tiny_torchvision_vit(), torch.randn(3, 3, 32, 32), [1, 3, 0]
    blocks = list(vit.encoder.layers)[-last:]
    with TorchcamLeGrad(vit, blocks) as extractor:
        with torch.enable_grad(): scores = vit(x)
        expected = extractor(cls, scores, normalized=False)[0]  # [bs, 4, 4]
    ours = LeGrad(vit, None if last == 3 else blocks)(x, cls=cls)[:, 0]
    assert expected.abs().max() > 0
    torch.testing.assert_close(normalize_maps(ours), normalize_maps(expected), atol=1e-4, rtol=0)
    torch.testing.assert_close(ours, expected, atol=1e-6, rtol=1e-4)  # raw maps too: the same formula
    assert not has_hooks(vit)

def test_rollout_on_torchvision_equals_loops():
    vit, x = tiny_torchvision_vit(), torch.randn(2, 3, 32, 32)
    kept = []  # torchvision's blocks ask nn.MultiheadAttention for no weights: these hooks ask for them per head
    def ask(m, args, kwargs): return args, {**kwargs, 'need_weights': True, 'average_attn_weights': False}
    handles = [b.self_attention.register_forward_pre_hook(ask, with_kwargs=True) for b in vit.encoder.layers]
    handles += [b.self_attention.register_forward_hook(lambda m, i, o: kept.append(o[1])) for b in vit.encoder.layers]
    with torch.no_grad(): vit(x)
    for h in handles: h.remove()
    torch.testing.assert_close(AttentionRollout(vit)(x)[:, 0], loop_rollout(kept, [0], 1, 'mean'), atol=1e-5, rtol=0)
    assert not has_hooks(vit)

@pytest.fixture(scope='module')
def vit_learner(tmp_path_factory):
    from fastai.learner import Learner
    import torch.nn.functional as F
    path = tmp_path_factory.mktemp('vit')
    make_digits(path, n_train=60, n_valid=8, size=32, digit_size=16)
    dls = digits_dls(path, bs=8)
    torch.manual_seed(0)
    vit = timm.create_model('vit_tiny_patch16_224', pretrained=False, img_size=32, patch_size=8, depth=2,
                            num_classes=dls.c)
    return Learner(dls, vit, loss_func=F.cross_entropy)

def test_learner_rollout_and_legrad(vit_learner):
    learn = vit_learner
    learn.model.train()  # a learner after fit: left in training mode, as found
    fused = [b.attn.fused_attn for b in learn.model.blocks]
    x = learn.cam_batch([0, 1, 2]).as_subclass(torch.Tensor)
    for method in ('rollout', 'legrad'):
        maps = learn.cam([0, 1, 2], method=method, cls=[0, 1, 2])
        assert maps.shape == (3, 1, 4, 4) and (maps >= 0).all() and maps.amax((1, 2, 3)).gt(0).all()
        torch.testing.assert_close(maps, cam_method(learn.model, method)(x, cls=[0, 1, 2]))
        assert learn.model.training and not has_hooks(learn.model)
        assert [b.attn.fused_attn for b in learn.model.blocks] == fused
    ax = learn.show_cam(0, method='rollout')
    assert ax is not None
    learn.model.eval()
