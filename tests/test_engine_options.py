"""Engine options: padded token batches and pytorch-grad-cam's two smoothings (second-order gradients: nbs/03_engine).

Padded text: every method that runs on text is checked against a plain reference on the same padded batch: a hook
keeps the `SentenceEncoder`'s output, the whole model runs with its graph, plain `autograd.grad` per class, and each
item's activations and gradients are sliced to its real tokens before its map is made. The reference uses the same
batch's activations, not the item alone: AWD_LSTM's hidden state runs through the padding before a text (fastai pads
in chunks of `bptt` before it), so a text's activations alone differ from its activations in a padded batch.

Smoothings: Grad-CAM with `eigen_smooth=True` against pytorch-grad-cam's raw projection (`get_cam_image`, before ReLU)
up to the sign its SVD returns, and with `aug_smooth=True` against its output (the mean of the six augmentations' maps,
each stretched to the input and scaled to [0, 1]) after stretching ours the same way, per-image min-max, to 1e-4, on a
seeded resnet18 at layer3 and layer4 (2 images of 64 px). Eigen smoothing of the methods whose map is a sum of channel
maps not made by `weights` (HiResCAM, LayerCAM, Grad-CAM element-wise, Score-CAM, Ablation-CAM) against
pytorch-grad-cam's, the same way, on a small plain CNN at two layers (16 px images, 8x8 maps); CAM's, which no peer
has, is Grad-CAM's times the number of positions at the layer before the pooling (Grad-CAM's weights are CAM's over
them)."""
import pytest
import torch
from torch import nn
from fastai.text.all import AWD_LSTM, awd_lstm_clas_config, text_classifier_learner
from fastcam.all import (METHODS, EigenCAM, EigenGradCAM, GradCAM, HiResCAM, RegionTarget, find_layer, make_sentiment,
                         real_tokens, resize_maps, seen_from, sentiment_dls, text_encoder)

BPTT, MAX_LEN = 8, 16


def close(a, b, rel=1e-5):
    "Equal to `rel` relative to the largest value of `b`."
    assert (a - b).abs().max() <= rel * b.abs().max().clamp_min(1e-12), f"{(a - b).abs().max()} vs {b.abs().max()}"


@pytest.fixture(scope='module')
def text():
    "A random-weight AWD_LSTM classifier and a padded batch of texts of different lengths (one longer than max_len)."
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a small RNN: one thread beats two on a busy machine
    data = make_sentiment(40, 10, seed=0)
    torch.manual_seed(0)
    learn = text_classifier_learner(sentiment_dls(data, bs=16, seq_len=BPTT), AWD_LSTM, pretrained=False,
                                    seq_len=BPTT, max_len=MAX_LEN, drop_mult=0.1,
                                    config=dict(awd_lstm_clas_config, emb_sz=16, n_hid=32, n_layers=1))
    texts = [data.texts[-1], 'the plot was great .', 'the movie was great , the acting is good , the end is dull .',
             'a dull film , the acting is poor .']
    x = learn.cam_batch(texts).as_subclass(torch.Tensor)  # [4, T], longest first, as fastai's SortedDL makes it
    yield learn.model.eval(), x
    torch.set_num_threads(threads)


def plain_reference(model, x, method, cls):
    "`(A, G, targets, logits)`: the encoder's output `[bs, T', C]`, the scores' gradients `[bs, k, T', C]` by plain autograd."
    store = {}
    hook = model[0].register_forward_hook(lambda m, i, o: store.update(A=o[0]))
    try:
        with torch.enable_grad(): output = model(x)
    finally: hook.remove()
    A, logits = store['A'], output[0]
    targets, scores = method._scores(output, logits, cls, None, None, len(x))  # the method's own scores (Finer-CAM's)
    grads = []
    for j in range(scores.shape[1]):
        g = torch.autograd.grad(scores[:, j].sum(), A, retain_graph=True, create_graph=method.second_order)[0]
        if method.second_order and g.requires_grad:  # ShapleyCAM: the gradient less half its Hessian-vector product
            g = g - torch.autograd.grad(g, A, grad_outputs=A.detach(), retain_graph=True)[0] / 2
        grads.append(g.detach())
    return A.detach(), torch.stack(grads, 1), targets, logits.detach()


def item_maps(method, A, G, targets, logits, x, real):
    "Each item's map from its own real positions only: `[k, n_i]` per row."
    maps = []
    for i, r in enumerate(real):
        A_i, G_i = A[i, r].T[None], G[i][:, r].transpose(1, 2)[None]  # [1, C, n], [1, k, C, n]
        m = method.layer_map(A_i, G_i, targets[i:i + 1], logits[i:i + 1].float(), x[i:i + 1])[0]
        maps.append(m.relu())
    return maps


def text_methods(model, x):
    "Every registered method class that maps one unpadded text of this model (Score-CAM & co. mask the input: no)."
    ok = []
    for method in dict.fromkeys(METHODS.values()):
        try: method(model)(x[:1], cls=1)
        except (ValueError, TypeError, RuntimeError): continue
        ok.append(method)
    return ok


def test_padded_batch_maps_real_tokens_only(text):
    model, x = text
    encoder = text_encoder(model)
    T = x.shape[1]
    start = seen_from(encoder, T)
    real = real_tokens(model, x)[:, start:]  # [4, T']
    assert start > 0 and (~real).any(1).sum() >= 2  # tokens never seen, and padding in at least two rows
    assert len(set(real.sum(1).tolist())) == len(x)  # items one by one: RandomCAM's weights depend on the row
    assert real_tokens(model, x[:1]).all()  # the longest text: no padding
    cls = torch.tensor([[0, 1], [1, 0], [1, 1], [0, 0]])
    methods = text_methods(model, x)
    names = {m.__name__ for m in methods}
    assert {'GradCAM', 'HiResCAM', 'EigenCAM', 'GradCAMPlusPlus', 'XGradCAM', 'LayerCAM'} <= names, names
    for method_class in methods:
        method = method_class(model)
        calls = []
        hook = model.register_forward_hook(lambda *a: calls.append(1))
        try: res = method.compute(x, cls)
        finally: hook.remove()
        assert len(calls) == 1, f"{method_class.__name__}: {len(calls)} forwards"  # one forward stays one forward
        A, G, targets, logits = plain_reference(model, x, method, cls)
        assert res.maps.shape == (4, 2, T - start)
        for i, expected in enumerate(item_maps(method, A, G, targets, logits, x, real)):
            close(res.maps[i][:, real[i]], expected)
            assert (res.maps[i][:, ~real[i]] == 0).all(), method_class.__name__


def test_padded_batch_by_hand(text):
    "Grad-CAM's weights are the gradient's mean over an item's real tokens; Eigen-CAM's SVD sees only them."
    model, x = text
    start = seen_from(text_encoder(model), x.shape[1])
    real = real_tokens(model, x)[:, start:]
    cls = torch.tensor([[1], [0], [1], [0]])
    A, G, _, _ = plain_reference(model, x, GradCAM(model), cls)  # [bs, T', C], [bs, 1, T', C]
    grad, hires, eigen = (m(model)(x, cls)[:, 0] for m in (GradCAM, HiResCAM, EigenCAM))
    for i, r in enumerate(real):
        a, g = A[i, r], G[i, 0, r]  # [n, C] each
        close(grad[i, r], (a @ g.mean(0)).relu())
        close(hires[i, r], (a * g).sum(-1).relu())
        centred = (a - a.mean(0)).double()
        _, _, Vh = torch.linalg.svd(centred, full_matrices=False)
        v = Vh[0] * (1 if Vh[0].sum() >= 0 else -1)
        close(eigen[i, r], (centred @ v).float().relu())
        assert (grad[i, ~r] == 0).all() and (eigen[i, ~r] == 0).all()
    # the longest text has no padding: its map is the one over all positions, as before
    a, g = A[0], G[0, 0]
    close(grad[0], (a @ g.mean(0)).relu())


class MaskedText(nn.Module):  # (token ids, attention mask) -> embedding -> LSTM -> mean over the real tokens -> linear
    def __init__(self):
        super().__init__()
        self.emb, self.rnn, self.head = nn.Embedding(20, 6), nn.LSTM(6, 8, batch_first=True), nn.Linear(8, 3)
    def forward(self, ids, mask):
        h = self.rnn(self.emb(ids))[0] * mask[..., None]
        return self.head(h.sum(1) / mask.sum(1, keepdim=True))


def test_attention_mask_marks_padding():
    "A Hugging Face-style batch (input_ids, attention_mask): the masked tokens are padding, as fastai's pad_idx."
    torch.manual_seed(0)
    model = MaskedText().eval()
    ids = torch.randint(1, 20, (3, 7))
    mask = (torch.arange(7)[None] < torch.tensor([[7], [4], [2]])).long()
    test_real = real_tokens(model, (ids * mask, mask))
    assert torch.equal(test_real, mask.bool())
    maps = GradCAM(model, 'rnn')((ids * mask, mask), 2)[:, 0]  # [3, 7]
    A = model.rnn(model.emb(ids * mask))[0].detach().requires_grad_()
    h = A * mask[..., None]
    G = torch.autograd.grad(model.head(h.sum(1) / mask.sum(1, keepdim=True))[:, 2].sum(), A)[0]
    for i, r in enumerate(mask.bool()):
        close(maps[i, r], (A[i, r] @ G[i, r].mean(0)).relu().detach())
        assert (maps[i, ~r] == 0).all()
    assert real_tokens(model, ids) is None  # no mask, no pad_idx: every token is real
    assert real_tokens(nn.Conv2d(3, 3, 1), torch.rand(1, 3, 4, 4)) is None


# --- pytorch-grad-cam's smoothings: agreement on a seeded resnet18, 2 images of 64 px, at layer3 and layer4 ---

pgc = pytest.importorskip('pytorch_grad_cam')


@pytest.fixture(scope='module')
def resnet():
    from torchvision.models import resnet18
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small convolutions: one thread beats two on a busy machine
    torch.manual_seed(0)
    yield resnet18(num_classes=10).eval(), torch.randn(2, 3, 64, 64), torch.tensor([[1], [4]])
    torch.set_num_threads(threads)


def minmax(maps):
    lo, hi = maps.amin((-2, -1), keepdim=True), maps.amax((-2, -1), keepdim=True)
    return (maps - lo) / (hi - lo).clamp_min(1e-12)


def peer(model, layer, x, targets, **options):
    "pytorch-grad-cam's Grad-CAM `[bs, 1, H, W]` (stretched to the input, scaled to [0, 1]) and its raw maps."
    import copy
    import numpy as np
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    model = copy.deepcopy(model)  # it calls .backward() into the parameters
    cam = pgc.GradCAM(model=model, target_layers=[find_layer(model, layer)])
    raws, original = [], cam.get_cam_image
    cam.get_cam_image = lambda *a, **k: (raws.append(original(*a, **k)), raws[-1])[1]
    out = cam(input_tensor=x, targets=[ClassifierOutputTarget(int(t)) for t in targets[:, 0]], **options)
    cam.activations_and_grads.release()
    return torch.from_numpy(out)[:, None], torch.from_numpy(np.asarray(raws[0])).float()[:, None]


@pytest.mark.parametrize('layer', ['layer3', 'layer4'])
def test_smoothings_agree_with_pytorch_grad_cam(resnet, layer):
    model, x, targets = resnet
    method = GradCAM(model, layer)
    # eigen smoothing: the raw projection, before ReLU, equal up to the sign pytorch-grad-cam's SVD happens to give
    ours = GradCAM(model, layer, relu=False)(x, targets, eigen_smooth=True)
    _, theirs = peer(model, layer, x, targets, eigen_smooth=True)
    same = torch.where((ours * theirs).sum((-2, -1), keepdim=True) > 0, 1., -1.)
    assert ((ours - same * theirs) / ours.abs().amax((-2, -1), keepdim=True)).abs().max() < 1e-4
    plain = method(x, targets)
    assert (minmax(ours.relu()) - minmax(plain)).abs().max() > 1e-2  # it is not Grad-CAM's map
    # test-time augmentation: pytorch-grad-cam's maps at the input's size; ours at the layer's, stretched the same way
    theirs, _ = peer(model, layer, x, targets, aug_smooth=True)
    ours = method(x, targets, aug_smooth=True)
    assert ours.shape == plain.shape
    gap = (minmax(resize_maps(ours, (64, 64))) - minmax(theirs)).abs().max()
    assert gap < 1e-4, gap
    assert (minmax(ours) - minmax(plain)).abs().max() > 1e-2  # the augmentations change the map


def test_aug_smooth_gives_an_invariant_model_its_raw_map():
    "A model that flips and scales with its input (1x1 convolutions, no bias) on a symmetric image: the raw map back."
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 1, bias=False), nn.ReLU(), nn.Conv2d(4, 4, 1, bias=False), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2, bias=False)).eval()
    x = torch.rand(3, 3, 8, 8)
    x = x + x.flip(-1)
    for method in (GradCAM(model, '1'), GradCAM(model, '1', relu=False), HiResCAM(model, '3')):
        plain, smooth = method(x, 1), method(x, 1, aug_smooth=True)
        close(smooth, plain)
    res = GradCAM(model, '1').compute(x, topk=2, aug_smooth=True)
    plain = GradCAM(model, '1').compute(x, topk=2)
    assert torch.equal(res.targets, plain.targets) and torch.equal(res.logits, plain.logits)
    close(res.maps, plain.maps)


def test_smoothing_refusals_before_any_work():
    "A region of a segmentation output would not flip with the input; a map made per position has no channel maps."
    torch.manual_seed(0)
    segmenter = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 1)).eval()  # [bs, 2, H, W]
    x = torch.rand(2, 3, 8, 8)
    calls = []
    hook = segmenter.register_forward_hook(lambda *a: calls.append(1))
    try:
        with pytest.raises(ValueError, match="RegionTarget's pixels would not flip"):
            GradCAM(segmenter, '1')(x, target=RegionTarget(1), aug_smooth=True)
        for method in (EigenCAM, EigenGradCAM):  # principal components already, not sums of channel maps
            with pytest.raises(ValueError, match="eigen_smooth has nothing to project"):
                method(segmenter, '1')(x, target=RegionTarget(1), eigen_smooth=True)
        assert not calls
        with pytest.raises(ValueError, match="RegionTarget's pixels would not flip"):  # found from the output's shape
            GradCAM(segmenter, '1')(x, 1, aug_smooth=True)
    finally: hook.remove()



# --- eigen smoothing of the methods whose map is a sum of channel maps made otherwise than by `weights` ---

@pytest.fixture(scope='module')
def small():
    "A seeded plain CNN built of nn.Sequential (Ablation-CAM runs its tail): 16 px images, 8x8 maps at '4' and '6'."
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1),
                          nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 5)).eval()
    with torch.no_grad(): model[1].running_mean.uniform_(-0.3, 0.3)
    return model, torch.randn(2, 3, 16, 16), torch.tensor([[1], [4]])


def raw_peer(peer, model, layer, x, targets, **options):
    "pytorch-grad-cam's raw maps `[bs, 1, h, w]` (its `get_cam_image`, before ReLU) for one class per item."
    import copy
    import numpy as np
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    model = copy.deepcopy(model)
    cam = peer(model=model, target_layers=[find_layer(model, layer)])
    raws, original = [], cam.get_cam_image
    cam.get_cam_image = lambda *a, **k: (raws.append(original(*a, **k)), raws[-1])[1]
    cam(input_tensor=x, targets=[ClassifierOutputTarget(int(t)) for t in targets[:, 0]], **options)
    cam.activations_and_grads.release()
    return torch.from_numpy(np.asarray(raws[0])).float()[:, None]


def agree_up_to_sign(ours, theirs, eps=1e-4):
    "Raw maps equal up to the sign of each map (pytorch-grad-cam keeps the sign its SVD gives), relative to the largest."
    same = torch.where((ours * theirs).sum((-2, -1), keepdim=True) > 0, 1., -1.)
    gap = ((ours - same * theirs) / ours.abs().amax((-2, -1), keepdim=True)).abs().max().item()
    assert gap < eps, gap


@pytest.mark.parametrize('layer', ['4', '6'])
def test_eigen_smooth_of_more_methods_agrees_with_pytorch_grad_cam(small, layer):
    "HiResCAM, LayerCAM, Grad-CAM element-wise, Score-CAM and Ablation-CAM: the first component of their channel maps."
    from fastcam.all import AblationCAM, GradCAMElementWise, LayerCAM, ScoreCAM
    model, x, targets = small
    for ours, peer in ((HiResCAM, pgc.HiResCAM), (LayerCAM, pgc.LayerCAM), (GradCAMElementWise, pgc.GradCAMElementWise),
                       (ScoreCAM, pgc.ScoreCAM), (AblationCAM, pgc.AblationCAM)):
        smoothed = ours(model, layer, relu=False)(x, targets, eigen_smooth=True)  # the peer's projection, not its map
        agree_up_to_sign(smoothed, raw_peer(peer, model, layer, x, targets, eigen_smooth=True))


def test_eigen_smooth_of_cam(small):
    "CAM's channel maps are Grad-CAM's times the positions (its weights, W / (h w), at the layer before the pooling)."
    from fastcam.all import CAM
    model, x, targets = small
    cam = CAM(model, '6', relu=False)(x, targets, eigen_smooth=True)
    close(cam, 64 * GradCAM(model, '6', relu=False)(x, targets, eigen_smooth=True))  # 8x8 positions
    assert not torch.allclose(cam, CAM(model, '6', relu=False)(x, targets), atol=1e-3)
