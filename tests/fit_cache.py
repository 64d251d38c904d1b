"""Trained models shared by the tests of one pytest run.

Several notebooks and tests train the same model on the same data with the same seed: the shortcut tutorial's two models
are find_and_fix's shortcut and clean models, and that clean model is 12_cluster's; quickstart's model is the one
`fastcam demo` trains with its defaults (tests/test_demo.py), and the one the callback tutorial trains watched by
`CAMCallback`. `FitCache.install` (called by conftest.py for the whole run) wraps `Learner.fit_one_cycle`: the first
such fit trains and stores its outcome; every later one with the same key loads it, under a file lock, so that the two
xdist workers never train it twice. The notebooks keep their ordinary fastai training code.

The key holds everything a fit's outcome depends on: the model (architecture, weights, training flags), the data (the
pixels and labels the loaders read, their transforms, batch size, the training loader's generator), the loss, optimizer,
metrics and callbacks, the fit's arguments, torch's generator, the thread count, the versions of torch and fastai and
the source of fastcam. Paths and file encodings are left out, so that the same pictures in two folders share a fit.
Python's and numpy's global generators count only when the fit draws from them (the stored fit says). A fit with any
other callback beyond fastai's defaults (`CAMGuidance`, ...) or on a learner that already has an optimizer is not
cached. A fit watched by `CAMCallback` trains for real, since the callback must see it, and stores its outcome under the
key of the same fit without the callback, which changes nothing in a training (tests/test_callback.py checks it bit for
bit; tests/test_fit_cache.py checks the stored outcome against a fit without it): the callback tutorial's fit is
quickstart's. A watched fit never loads one, since a replay would leave the callback's history empty. A replay leaves
the learner as the fit did: weights, BatchNorm statistics, training flags, optimizer state, the recorder's losses and
metrics, and every generator (tests/test_fit_cache.py checks it bit for bit). The cache lives in the run's temporary
folder: a clean clone, and every new run, starts empty."""
import functools, hashlib, inspect, io, pickle, random, re
from pathlib import Path
import numpy as np
import pandas as pd
import torch
from filelock import FileLock
from PIL import Image, UnidentifiedImageError
import fastai
from fastcore.foundation import L
from fastai.callback.core import TrainEvalCallback
from fastai.callback.progress import ProgressCallback
from fastai.learner import Learner, Recorder, CastToTensor
import fastai.callback.schedule  # noqa: F401  (defines Learner.fit_one_cycle)
import fastcam
from fastcam.callback import CAMCallback

PLAIN_CALLBACKS = (TrainEvalCallback, Recorder, CastToTensor, ProgressCallback)  # a fresh Learner's
WATCHERS = (CAMCallback,)  # callbacks that only watch a fit: it stores what the fit without them leaves
RECORDER_STATE = ('lrs', 'iters', 'losses', 'values', 'metric_names', 'log')
_ADDRESS = re.compile(r' at 0x[0-9a-f]+')

def _describe(obj) -> str:
    "A text that names `obj` the same way in every process: no memory addresses."
    if isinstance(obj, functools.partial):
        return f"partial({_describe(obj.func)}, {obj.args!r}, {sorted(obj.keywords.items())!r})"
    if inspect.isfunction(obj) or inspect.isclass(obj): return f"{obj.__module__}.{obj.__qualname__}"
    return _ADDRESS.sub('', repr(obj))

def _tensor_bytes(t: torch.Tensor) -> bytes:
    return t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes()

def _content(file: Path) -> bytes:
    "A picture's pixels (two encodings of one picture train the same model), or another file's bytes."
    try: img = Image.open(file)
    except UnidentifiedImageError: return file.read_bytes()
    return f"{img.mode} {img.size}".encode() + img.tobytes()

def _source_hash() -> str:
    "fastcam's code: a change to it is a change to what a fit computes."
    h = hashlib.sha256()
    for f in sorted(Path(fastcam.__file__).parent.glob('*.py')): h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()

class FitCache:
    "Fits of `Learner.fit_one_cycle` stored in `folder` and loaded again by the fits with the same key."
    def __init__(self, folder):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.source = _source_hash()
        self.trained, self.replayed = 0, 0  # in this process

    # ---- the key
    def _data(self, h, dl, path: str, valid: bool):
        "What a loader feeds the fit: its items (file bytes and labels), transforms, batches and shuffling."
        items = getattr(dl.dataset, 'items', None)
        if not isinstance(items, pd.DataFrame): return False  # only the DataFrames of from_df-style loaders
        text = lambda o: _describe(o).replace(path, '<path>')
        h.update(text([dl.dataset.tfms, dl.after_item, dl.before_batch, dl.after_batch]).encode())
        h.update(repr((dl.bs, dl.shuffle, dl.drop_last, dl.n, str(dl.device))).encode())
        read = [c for pipe in dl.dataset.tfms for t in pipe.fs for c in L(getattr(t, 'cols', []))]
        items = items[[c for c in items.columns if c in read] or list(items.columns)]  # the columns the loader reads
        h.update(pd.util.hash_pandas_object(items, index=True).to_numpy().tobytes())
        h.update(repr(list(items.columns)).encode())
        for col in items.columns:
            values = items[col]
            if not pd.api.types.is_string_dtype(values) or not (Path(path)/str(values.iloc[0])).is_file(): continue
            for f in values: h.update(_content(Path(path)/f))
        if dl.shuffle or not valid: h.update(pickle.dumps(dl.rng.getstate()))
        return True

    def key(self, learn: Learner, arguments: dict) -> str | None:
        "The hash of everything the fit depends on, or None if this fit is not one the cache can replay."
        if learn.opt is not None or arguments.get('cbs') or arguments.get('start_epoch'): return None
        cbs = [cb for cb in learn.cbs if not isinstance(cb, WATCHERS)]
        if not all(isinstance(cb, PLAIN_CALLBACKS) for cb in cbs): return None
        h = hashlib.sha256()
        h.update(repr((torch.__version__, fastai.__version__, torch.get_num_threads(), self.source)).encode())
        h.update(repr(sorted((k, _describe(v)) for k, v in arguments.items())).encode())
        h.update(repr([type(cb).__qualname__ for cb in cbs]).encode())
        h.update(_describe([learn.loss_func, learn.opt_func, learn.splitter, learn.lr, learn.wd, learn.moms,
                            learn.wd_bn_bias, learn.train_bn, [getattr(m, 'name', m) for m in learn.metrics]]).encode())
        h.update(_describe(learn.model).encode())
        for name, t in learn.model.state_dict().items(): h.update(name.encode() + _tensor_bytes(t))
        h.update(bytes(m.training for m in learn.model.modules()))
        h.update(bytes(p.requires_grad for p in learn.model.parameters()))
        dls, path = learn.dls, str(learn.dls.path)
        h.update(repr(getattr(dls, 'vocab', None)).encode())
        if not (self._data(h, dls.train, path, False) and self._data(h, dls.valid, path, True)): return None
        h.update(_tensor_bytes(torch.get_rng_state()))
        return h.hexdigest()[:24]

    # ---- storing and replaying
    @staticmethod
    def _globals() -> dict: return dict(random=random.getstate(), numpy=np.random.get_state())

    @staticmethod
    def _same(a, b) -> bool: return pickle.dumps(a) == pickle.dumps(b)

    def _matches(self, entry: dict, now: dict) -> bool:
        "Whether `entry` was stored from the same global generators, or from a fit that does not draw from them."
        return all(self._same(entry['before'][k], now[k]) or self._same(entry['before'][k], entry['after'][k])
                   for k in now)

    def _record(self, learn: Learner, before: dict, n_epoch: int) -> dict:
        buffer = io.BytesIO()
        torch.save(learn.opt.state_dict(), buffer)
        return dict(model={k: v.detach().clone() for k, v in learn.model.state_dict().items()},
                    training=[m.training for m in learn.model.modules()], opt=buffer.getvalue(),
                    recorder={a: getattr(learn.recorder, a) for a in RECORDER_STATE if hasattr(learn.recorder, a)},
                    final_record=getattr(learn, 'final_record', None), n_epoch=n_epoch,
                    learner={a: getattr(learn, a) for a in ('epoch', 'n_epoch', 'train_iter', 'pct_train', 'iter',
                                                            'smooth_loss', 'loss') if hasattr(learn, a)},
                    before=before, after=self._globals(), torch_after=torch.get_rng_state(),
                    train_rng=learn.dls.train.rng.getstate(),
                    valid_rng=learn.dls.valid.rng.getstate() if learn.dls.valid.shuffle else None)

    def _replay(self, learn: Learner, entry: dict):
        learn.create_opt()
        learn.model.load_state_dict(entry['model'])
        for m, training in zip(learn.model.modules(), entry['training']): m.training = training
        learn.opt.load_state_dict(torch.load(io.BytesIO(entry['opt']), weights_only=False))
        for a, v in entry['recorder'].items(): setattr(learn.recorder, a, v)
        learn.final_record = entry['final_record']
        for a, v in entry['learner'].items(): setattr(learn, a, v)
        torch.set_rng_state(entry['torch_after'])
        drew = {k: not self._same(entry['before'][k], entry['after'][k]) for k in entry['after']}
        if drew['random']: random.setstate(entry['after']['random'])
        if drew['numpy']: np.random.set_state(entry['after']['numpy'])
        learn.dls.train.rng.setstate(entry['train_rng'])
        if entry['valid_rng'] is not None: learn.dls.valid.rng.setstate(entry['valid_rng'])
        else:  # not shuffled: each epoch's validation only moves its generator on, as a fit does
            for _ in range(entry['n_epoch']): learn.dls.valid.randomize()

    def fit_one_cycle(self, original, learn: Learner, *args, **kwargs):
        "`original(learn, *args, **kwargs)`, or its stored outcome."
        bound = inspect.signature(original).bind(learn, *args, **kwargs)
        bound.apply_defaults()
        arguments = {k: v for k, v in bound.arguments.items() if k != 'self'}
        key = self.key(learn, arguments)
        if key is None: return original(learn, *args, **kwargs)
        with FileLock(self.folder/f'{key}.lock'):
            file = self.folder/f'{key}.pt'
            entries = torch.load(file, weights_only=False) if file.exists() else []
            now = self._globals()
            entry = next((e for e in entries if self._matches(e, now)), None)
            watched = any(isinstance(cb, WATCHERS) for cb in learn.cbs)
            if entry is not None and not watched:
                self._replay(learn, entry)
                self.replayed += 1
                print(f"(the test run's fit cache: {arguments['n_epoch']} epochs loaded, fit {key})")
                return
            result = original(learn, *args, **kwargs)
            if entry is None: torch.save(entries + [self._record(learn, now, arguments['n_epoch'])], file)
            self.trained += 1
            return result

    def install(self):
        "Route every `Learner.fit_one_cycle` of this process through the cache; returns a function that undoes it."
        original = Learner.fit_one_cycle
        @functools.wraps(original)
        def fit_one_cycle(learn, *args, **kwargs): return self.fit_one_cycle(original, learn, *args, **kwargs)
        Learner.fit_one_cycle = fit_one_cycle
        def uninstall(): Learner.fit_one_cycle = original
        return uninstall
