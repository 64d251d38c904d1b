"""Maps over the tokens of a fastai text classifier (AWD_LSTM), checked against plain autograd.

The reference is Grad-CAM written by hand: a hook keeps the `SentenceEncoder`'s output, the full graph runs, one
`autograd.grad` per class, weights = the gradient's mean over time. Reviews are longer than `bptt` (8 tokens), so the
encoder reads them in chunks with its hidden state carried, and longer than `max_len` (16), so the classifier never
sees their first tokens."""
import torch
import pytest
from fastai.text.all import AWD_LSTM, awd_lstm_clas_config, text_classifier_learner
from fastai.interpret import ClassificationInterpretation
from fastcam.all import (CAMCallback, CAMInterpretation, GradCAM, HiResCAM, grad_x_embedding, TokenMap, TokenMaps, make_sentiment, seen_from,
                         sentiment_dls, store_maps, text_encoder, text_rows)

BPTT, MAX_LEN = 8, 16


def small_learner(dls):
    torch.manual_seed(0)
    return text_classifier_learner(dls, AWD_LSTM, pretrained=False, seq_len=BPTT, max_len=MAX_LEN, drop_mult=0.1,
                                   config=dict(awd_lstm_clas_config, emb_sz=16, n_hid=32, n_layers=1))


@pytest.fixture(scope='module')
def learn():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a small RNN: one thread beats two on a busy machine
    data = make_sentiment(200, 40, seed=0)
    learn = small_learner(sentiment_dls(data, bs=32, seq_len=BPTT))
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(4, 3e-2)
    learn.texts = data.texts
    yield learn
    torch.set_num_threads(threads)


@pytest.fixture(scope='module')
def texts(learn):
    "A short review (within bptt), two longer than max_len, and one of middle length, in no order of length."
    short = 'the plot was great .'
    return [learn.texts[-1], short, learn.texts[-2], learn.texts[-5]]


def reference_gradcam(model, ids, c):
    "Grad-CAM over the encoder's output tokens, before its ReLU: full graph, plain autograd, mean over each text's tokens."
    store = {}
    hook = model[0].register_forward_hook(lambda m, i, o: store.update(A=o[0]))
    try:
        with torch.enable_grad(): logits = model.eval()(ids)[0]
    finally: hook.remove()
    A = store['A']  # [bs, T', C]: the outputs of the last tokens
    real = (ids[:, ids.shape[1] - A.shape[1]:] != model[0].pad_idx)[..., None]  # [bs, T', 1]: not padding
    G = torch.autograd.grad(logits[:, c].sum(), A)[0]
    weights = (G * real).sum(1, keepdim=True) / real.sum(1, keepdim=True)  # the mean over the text's own tokens
    return (weights * A).sum(-1).detach()  # [bs, T']


def close(a, b, rel=1e-5):
    "Equal to `rel` relative to the largest value."
    assert (a - b).abs().max() <= rel * b.abs().max(), f"{(a - b).abs().max()} vs {b.abs().max()}"


def test_gradcam_equals_plain_autograd(learn, texts):
    x = learn.cam_batch(texts)  # longest first, as fastai's SortedDL makes it
    ids = x.as_subclass(torch.Tensor)
    T = ids.shape[1]
    assert T > MAX_LEN > BPTT
    start = seen_from(learn.model[0], T)
    assert start > 0  # the longest review has tokens the classifier never sees
    lengths = [learn.cam_batch(t).shape[1] for t in texts]
    assert len(set(lengths)) == len(texts)
    order = sorted(range(len(texts)), key=lambda i: -lengths[i])  # the item in each row of the batch
    for c in (0, 1):
        maps = learn.cam(texts, cls=c, method='gradcam', relu=False)[:, 0]  # [n, T], in the items' order
        reference = reference_gradcam(learn.model, ids, c)  # [n, T - start], in the batch's order
        kept = (ids[:, start:] != text_encoder(learn.model).pad_idx)
        close(maps[order][:, start:], reference * kept)
        assert (maps[order][:, :start] == 0).all() and (maps[order][:, start:][~kept] == 0).all()
    relu = learn.cam(texts, cls=1)[:, 0]
    close(relu, learn.cam(texts, cls=1, method='gradcam', relu=False)[:, 0].relu())


def test_items_keep_their_order(learn, texts):
    "The batch is sorted longest first for the encoder; the maps come back in the order the texts were given."
    maps = learn.cam(texts, cls=[0, 1, 1, 0], method='gradcam', relu=False)
    reverse = learn.cam(texts[::-1], cls=[0, 1, 1, 0][::-1], method='gradcam', relu=False)
    torch.testing.assert_close(reverse, maps.flip(0), rtol=0, atol=0)
    assert [(m != 0).sum().item() > 0 for m in maps[:, 0]] == [True] * len(texts)


def test_k_classes_in_one_call_and_repeated_calls(learn, texts):
    res, _ = learn.cam_result(texts, topk=2)
    for j in range(2):
        one = learn.cam(texts, cls=res.targets[:, j].tolist())
        close(res.maps[:, j], one[:, 0])
    torch.testing.assert_close(learn.cam(texts, cls=1), learn.cam(texts, cls=1), rtol=0, atol=0)
    names = learn.cam(texts, cls='positive')
    close(names, learn.cam(texts, cls=1))


def test_gradient_times_embedding(learn, texts):
    "HiResCAM at the embedding without ReLU is gradient x embedding, from plain autograd (texts within one chunk)."
    short = ['the plot was great .', 'the movie was dull .']
    x = learn.cam_batch(short).as_subclass(torch.Tensor)
    assert x.shape[1] <= BPTT
    layer = learn.model[0].module.encoder_dp
    store = {}
    hook = layer.register_forward_hook(lambda m, i, o: store.update(E=o))
    try:
        with torch.enable_grad(): logits = learn.model.eval()(x)[0]
    finally: hook.remove()
    grad = torch.autograd.grad(logits[:, 1].sum(), store['E'])[0]
    expected = (grad * store['E']).sum(-1).detach()  # [n, T]
    maps = learn.cam(short, cls=1, method=HiResCAM(learn.model, layer, relu=False))[:, 0]
    close(maps, expected * (x != 1))
    assert (maps < 0).any()  # signed: some tokens speak against the class


def test_bad_input_errors_before_work(learn):
    calls = []
    hook = learn.model.register_forward_hook(lambda *a: calls.append(1))
    try:
        with pytest.raises(ValueError, match="is empty"): learn.cam('  ')
        with pytest.raises(KeyError, match="unknown class name 'great'"): learn.cam('a good film', cls='great')
        with pytest.raises(TypeError, match="this learner reads text"): learn.cam(torch.rand(3, 16, 16))
        with pytest.raises(ValueError, match="must be token ids"): GradCAM(learn.model)(torch.rand(2, 3, 16, 16))
    finally: hook.remove()
    assert not calls


def test_show(learn, texts):
    tm = learn.show_cam(texts[0], cls=1)
    assert isinstance(tm, TokenMap) and tm.unseen > 0 and tm.title.startswith('positive ')
    words = texts[0].split()
    assert tm.words == words[-len(tm.words):]  # detokenized: no xxbos, no padding
    T = learn.cam_batch(texts[0]).shape[1]  # xxbos and the words, no padding: one text
    start = seen_from(learn.model[0], T)
    assert tm.unseen == start - 1  # the tokens before start, but xxbos
    torch.testing.assert_close(tm.values[tm.unseen:], learn.cam(texts[0], cls=1)[0, 0, start:])
    assert 'xxbos' not in tm._repr_html_() and 'xxbos' in learn.show_cam(texts[0], markers=True)._repr_html_()
    grid = learn.show_cams(texts[:2], topk=2)
    assert isinstance(grid, TokenMaps) and len(grid) == 4
    assert len(grid.show().axes) == 4
    methods = learn.show_cams(texts[:2], cls=1, methods=['gradcam', grad_x_embedding(learn.model)])
    assert [m.title.split(':')[0] for m in methods] == ['gradcam', 'HiResCAM'] * 2  # method_label's names
    res, x = learn.cam_result(texts[:2], cls=1, method=grad_x_embedding(learn.model))
    own = text_rows(learn.model, res.maps, x)[1][0]  # [T]: xxbos and the words of the short text
    words = methods[3]
    assert words.words == texts[1].split() and (words.values < 0).any()  # signed
    torch.testing.assert_close(words.values, own[1:])


def test_interpretation_top_losses(learn):
    "Maps of the validation set stored per text over its own tokens, in dataset order, as learn.cam gives them."
    interp = CAMInterpretation.from_learner(learn, progress=False)
    fastai_interp = ClassificationInterpretation.from_learner(learn)
    torch.testing.assert_close(interp.losses, fastai_interp.losses.as_subclass(torch.Tensor), rtol=1e-5, atol=1e-6)
    dl = learn.dls.valid
    rows = [int(i) for i in dl.get_idxs()][:dl.bs]  # the first batch: the same texts, padded the same way
    res, x = learn.cam_result(rows, cls=interp.decoded[rows].tolist())
    for i, own in zip(rows, text_rows(learn.model, res.maps, x)):
        n = len(learn.dls.valid_ds[i][0])
        torch.testing.assert_close(interp.maps[i, :1, :n], own)
        assert (interp.maps[i, :, n:] == 0).all()
    shown = interp.plot_top_losses(3)
    top = interp.top_losses(3)[1].tolist()
    assert isinstance(shown, TokenMaps) and len(shown) == 6
    assert [int(m.title.split('item ')[1].split(',')[0]) for m in shown[::2]] == top
    assert shown[1].title.startswith('actual ')


def test_store_maps_keeps_lengths(learn, tmp_path):
    "Stored maps: each text over its own tokens, its length kept, equal to learn.cam's for the same batches."
    store = store_maps(learn, tmp_path/'maps', progress=False, checkpoint=0)
    ds, bs = learn.dls.valid_ds, learn.dls.valid.bs
    assert store.lengths.tolist() == [len(ds[i][0]) for i in range(len(ds))]
    for start in range(0, len(ds), bs):
        items = list(range(start, min(start + bs, len(ds))))
        res, x = learn.cam_result(items)  # the same texts in one batch, as store_maps makes it
        for i, own in zip(items, text_rows(learn.model, res.maps, x)):
            got = store[i]
            torch.testing.assert_close(got.maps, own)
            assert got.targets.tolist() == res.targets[i - start].tolist()
    assert (store.result().maps[0, :, store.lengths[0]:] == 0).all()


def test_callback_logs_token_maps(learn, tmp_path):
    "CAMCallback on a text learner: the recorded maps are learn.cam's of the same texts, drawn as words."
    other = small_learner(learn.dls)
    other.path = tmp_path
    items = [0, 5, 9]  # texts of different lengths: the batch holds them longest first
    cb = CAMCallback(items=items)
    with other.no_bar(), other.no_logging(): other.fit(1, 1e-2, cbs=cb)
    labels = [int(other.dls.valid_ds[i][1]) for i in items]
    torch.testing.assert_close(cb.history[1], other.cam(items, cls=labels))
    assert sorted(cb.history) == [0, 1] and (tmp_path/'cams'/'epoch_001.png').stat().st_size > 0
    shown = cb.plot_history()
    assert isinstance(shown, TokenMaps) and len(shown) == 6 and shown[1].title.startswith('epoch 1: ')


# --- a Hugging Face BERT in a plain Learner: attention rollout over its tokens, raw strings ----------------------------
SPECIALS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']

@pytest.fixture(scope='module')
def bert_learner():
    "A 2-layer random-weight BERT on the reviews, tokenized by a BertTokenizerFast made offline from their words."
    transformers = pytest.importorskip('transformers')
    import torch.nn.functional as F
    from fastai.data.core import Datasets
    from fastai.data.transforms import Categorize, ItemGetter
    from fastai.learner import Learner
    data = make_sentiment(40, 16, seed=0)
    words = sorted({w for t in data.texts for w in t.split()})
    # transformers 5 reads the vocabulary from `vocab=` (a dict or a file); `vocab_file=` is ignored: every word [UNK]
    tokenizer = transformers.BertTokenizerFast(vocab={w: i for i, w in enumerate(SPECIALS + words)})
    batch = tokenizer(data.texts, padding=True, return_tensors='pt')
    rows = [(batch['input_ids'][i], batch['attention_mask'][i], int(data.y[i])) for i in range(len(data.texts))]
    dsets = Datasets(rows, tfms=[[ItemGetter(0)], [ItemGetter(1)], [ItemGetter(2), Categorize()]],
                     splits=data.splits, n_inp=2)
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=len(SPECIALS) + len(words), hidden_size=16, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=32, max_position_embeddings=64,
                                     num_labels=2)
    learn = Learner(dsets.dataloaders(bs=8), transformers.BertForSequenceClassification(config),
                    loss_func=lambda out, y: F.cross_entropy(out.logits, y))
    learn.dls.tokenizer = tokenizer
    return learn

def bert_attention_by_hand(bert, ids, mask):
    "Each layer's attention [bs, heads, T, T]: softmax(q k^T / sqrt(d) + mask) from its query and key, by hand."
    kept = []
    def hook(module, args, kwargs, output):
        h = args[0] if args else kwargs['hidden_states']  # [bs, T, C]
        q, k = [lin(h).unflatten(-1, (module.num_attention_heads, -1)).transpose(1, 2) for lin in (module.query, module.key)]
        scores = q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5
        kept.append(scores.masked_fill(mask[:, None, None, :] == 0, float('-inf')).softmax(-1))
    layers = [layer.attention.self for layer in bert.bert.encoder.layer]
    handles = [m.register_forward_hook(hook, with_kwargs=True) for m in layers]
    try:
        with torch.no_grad(): bert(ids, mask)
    finally:
        for h in handles: h.remove()
    return kept

def cls_rollout_by_loops(attentions, mask):
    "Rollout, [CLS]'s row, with explicit loops; [CLS] itself and padding 0."
    bs, heads, T, _ = attentions[0].shape
    out = torch.zeros(bs, T)
    for b in range(bs):
        R = [[float(i == j) for j in range(T)] for i in range(T)]
        for A in attentions:
            fused = [[sum(float(A[b, h, i, j]) for h in range(heads)) / heads + (i == j) for j in range(T)]
                     for i in range(T)]
            fused = [[v / sum(row) for v in row] for row in fused]
            R = [[sum(fused[i][m] * R[m][j] for m in range(T)) for j in range(T)] for i in range(T)]
        for j in range(1, T): out[b, j] = R[0][j] * float(mask[b, j])
    return out

def test_bert_rollout_equals_loops(bert_learner):
    learn, items = bert_learner, [0, 3, 5]
    bert = learn.model
    ids, mask = [t.as_subclass(torch.Tensor) for t in learn.cam_batch(items)]  # validation items 0, 3, 5
    assert (mask == 0).any()  # padding in the batch
    implementation, training = bert.config._attn_implementation, bert.training  # a new model is in training mode
    maps = learn.cam(items, method='rollout', topk=2)  # [3, 2, T]
    assert bert.training == training
    expected = cls_rollout_by_loops(bert_attention_by_hand(bert.eval(), ids, mask), mask)
    bert.train(training)
    torch.testing.assert_close(maps[:, 0], expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(maps[:, 1], expected, atol=1e-5, rtol=0)  # the same map for every class
    assert bert.config._attn_implementation == implementation  # SDPA back after the call
    tm = learn.show_cam(3, method='rollout')
    assert len(tm.words) == int(mask[1].sum()) - 2  # [CLS] and [SEP] hidden, padding dropped

def test_bert_raw_strings(bert_learner):
    from fastcam.all import cam_method
    learn = bert_learner
    texts = ['the plot was great .', 'the acting is poor , the tickets were cheap .']
    batch = learn.dls.tokenizer(texts, padding=True, return_tensors='pt')
    x = (batch['input_ids'], batch['attention_mask'])
    for method, layer in (('gradcam', 'bert.encoder.layer.1'), ('rollout', None)):
        expected = cam_method(learn.model, method, layer).compute(x, cls=1).maps * x[1][:, None]  # padding 0
        torch.testing.assert_close(learn.cam(texts, cls=1, method=method, layer=layer), expected)
    tm = learn.show_cam(texts[1], method='rollout')
    assert tm.words == texts[1].split()
    with pytest.raises(ValueError, match='is empty'): learn.cam(' ', method='rollout')
    tokenizer = learn.dls.tokenizer
    del learn.dls.tokenizer
    try:
        with pytest.raises(TypeError, match='learn.dls.tokenizer = tokenizer'): learn.cam(texts, method='rollout')
    finally: learn.dls.tokenizer = tokenizer
