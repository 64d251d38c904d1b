"""Grad-CAM of fastai's AWD_LSTM text classifier against one inference forward and captum, in one run (CPU), issue 23.

    python bench/bench_text.py [--repeats 3] [--threads 2] [--captum-texts 32] [--full-captum] [--config full|small]

The model: fastai's `get_text_classifier(AWD_LSTM, ...)` with `awd_lstm_clas_config` (3 LSTM layers of 1,152 units,
embeddings of 400; what `text_classifier_learner(dls, AWD_LSTM, pretrained=False)` builds) and random weights, a
vocabulary of 5,000 tokens and 2 classes; `--config small` takes the tutorial's model instead (one layer of 64
units). The input: a batch of 32 texts of 200 random token ids (no padding), so the `SentenceEncoder` reads each in
three chunks of `bptt=72` tokens, carrying the hidden state.

Timed, each against one inference forward (`torch.no_grad()`): the floor of a gradient map (a forward with grad
through the whole model and `torch.autograd.grad` of the top score to the encoder's output, the plain-autograd
reference of issue 23), and fastcam's Grad-CAM of the predicted class and of both classes (one forward). Medians of
`--repeats` interleaved runs, so that drifts of a shared machine hit every contender alike.

captum's `LayerIntegratedGradients` (50 steps over the embedding `encoder_dp`, in internal batches of 32; baseline:
every token `xxunk`, as fastai's `SentenceEncoder` drops the rows that start a chunk with `xxpad`) costs a forward and
backward of 32 rows per step for 32 texts: on this shared CPU the whole batch takes tens of minutes. So by default its
time on the batch is made from two real runs, of 1 and of 2 steps: each step adds one more pass of 32 rows, and 50 steps
take `t1 + 49 (t2 - t1)`; `--full-captum` times the 50 steps themselves, and `--captum-texts k` explains the first `k`
texts only (against fastcam on the same `k`; a batch of a few texts costs an LSTM nearly as much as 32, so fastcam
gains less there). captum's layer hook takes one call of the layer per forward, so for it the encoder reads the 200
tokens in one chunk (`bptt=200`); the logits are the same (checked), as the chunks carry the hidden state.

Peak memory is measured in a fresh process for each operation, as bench/bench_ndim.py does: the resident peak above
what the process held with the model and input loaded (`/proc/self/clear_refs`, then `VmHWM`), with
MALLOC_MMAP_THRESHOLD_=65536 so that glibc returns freed tensors to the system at once.

Prints the tables and the ratios against the targets of issue 23 (Grad-CAM of 1 class <= 1.3x an inference forward,
>= 20x faster than captum's LayerIntegratedGradients, peak memory <= 1.1x the forward's), and records them in
bench/results.md (see bench/results.py)."""
import os
for var in ['OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'OPENBLAS_NUM_THREADS']: os.environ.setdefault(var, '2')
import argparse, json, statistics, subprocess, sys, time, warnings
import torch
from fastai.text.models.core import get_text_classifier
from fastai.text.models.awdlstm import AWD_LSTM, awd_lstm_clas_config
from fastcam.all import GradCAM
from results import record
from memory import rss_kib, reset_peak, peak_kib

warnings.filterwarnings('ignore')
BS, TOKENS, VOCAB, CLASSES, STEPS = 32, 200, 5000, 2, 50
CONFIGS = {'full': dict(awd_lstm_clas_config),
           'small': dict(awd_lstm_clas_config, emb_sz=64, n_hid=64, n_layers=1)}  # the tutorial's model

def load(config: str) -> tuple:
    "The seeded classifier in eval mode and its batch of token ids `[32, 200]`."
    torch.manual_seed(0)
    model = get_text_classifier(AWD_LSTM, VOCAB, CLASSES, seq_len=72, config=CONFIGS[config]).eval()
    return model, torch.randint(2, VOCAB, (BS, TOKENS))  # ids 0 and 1 are fastai's xxunk and xxpad


# --- the contenders ---------------------------------------------------------------------------------------------
def inference(model, x):
    with torch.no_grad(): return model(x)[0]

def full_graph_gradient(model, x):
    "A forward with grad through the whole model and `torch.autograd.grad` of the top score to the encoder's output."
    kept = {}
    handle = model[0].register_forward_hook(lambda m, i, o: kept.update(a=o[0]))  # (outputs [bs, T, C], mask)
    try: out = model(x)[0]
    finally: handle.remove()
    torch.autograd.grad(out.max(1).values.sum(), kept['a'])

def captum_lig(model, x, classes, steps: int = STEPS):
    "captum's LayerIntegratedGradients over the embedding, `steps` steps from a baseline of `xxunk` tokens (id 0)."
    from captum.attr import LayerIntegratedGradients
    lig = LayerIntegratedGradients(lambda ids: model(ids)[0], model[0].module.encoder_dp)
    bptt, model[0].bptt = model[0].bptt, x.shape[1]  # captum's hook takes one call of the embedding per forward
    try: return lig.attribute(x, baselines=torch.zeros_like(x), target=classes, n_steps=steps, internal_batch_size=BS)
    finally: model[0].bptt = bptt

def captum_time(model, x, classes, extrapolate: bool) -> float:
    "Seconds of captum's 50 steps on `x`: timed, or from runs of 1 and 2 steps (one more pass of 32 rows per step)."
    if not extrapolate: return _timed(lambda: captum_lig(model, x, classes))
    one, two = (_timed(lambda: captum_lig(model, x, classes, steps)) for steps in (1, 2))
    return one + (STEPS - 1) * (two - one)

def one_chunk_logits(model, x):
    "The logits with the encoder reading `x` in one chunk, as captum runs it: equal to the chunked ones."
    bptt, model[0].bptt = model[0].bptt, x.shape[1]
    try: return inference(model, x)
    finally: model[0].bptt = bptt

def _has(module: str) -> bool:
    try:
        __import__(module)
        return True
    except ImportError: return False


# --- peak memory, each operation in its own process -------------------------------------------------------------
MEMORY_OPS = {  # key -> label
    'forward': 'inference forward (no_grad)',
    'gradcam': 'fastcam GradCAM, predicted class',
    'full_graph': 'forward with grad + autograd.grad (full graph)',
}

def memory_child(config: str, kind: str):
    "Run one operation in this fresh process; print its peak memory above the baseline (model and input loaded)."
    model, x = load(config)
    reset = reset_peak()  # importing fastai peaks above some forwards: count from here on
    base = rss_kib()
    if kind == 'forward': inference(model, x)
    elif kind == 'gradcam': GradCAM(model)(x)
    elif kind == 'full_graph': full_graph_gradient(model, x)
    peak = peak_kib(reset)
    print(json.dumps({'extra_mib': (peak - base) / 1024, 'peak_mib': peak / 1024, 'reset': reset}))

def measure_memory(config: str, kind: str, threads: int) -> dict:
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_='65536')
    out = subprocess.run([sys.executable, __file__, '--memory-child', kind, '--config', config,
                          '--threads', str(threads)], capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- the run ----------------------------------------------------------------------------------------------------
def _timed(f) -> float:
    start = time.perf_counter()
    f()
    return time.perf_counter() - start

def bench(config: str, repeats: int, threads: int, captum_texts: int, full_captum: bool, command: str):
    model, x = load(config)
    gradcam = GradCAM(model)  # the default layer: fastai's SentenceEncoder, its output [bs, T, C] read per token
    setup = (f"fastai AWD_LSTM classifier ({config} config: {CONFIGS[config]['n_layers']} layers of "
             f"{CONFIGS[config]['n_hid']} units, embeddings of {CONFIGS[config]['emb_sz']}), random weights, batch "
             f"{BS} x {TOKENS} tokens (bptt 72), CPU, median of {repeats} interleaved runs; `{command}`")
    print(f"\n## {setup}\n", flush=True)
    runs = {
        'inference forward (no_grad)': lambda: inference(model, x),
        'forward + autograd.grad to the encoder output (full graph)': lambda: full_graph_gradient(model, x),
        'fastcam GradCAM, predicted class': lambda: gradcam(x),
        'fastcam GradCAM, both classes (one forward)': lambda: gradcam(x, topk=2),
    }
    for f in runs.values(): f()  # warm up
    times = {k: [] for k in runs}
    for _ in range(repeats):  # interleaved, so drifts of a shared machine hit every contender alike
        for k, f in runs.items(): times[k].append(_timed(f))
    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    fwd, one = med['inference forward (no_grad)'], med['fastcam GradCAM, predicted class']
    print("| contender | ms / batch | / inference forward |\n|---|---|---|")
    for k, v in med.items(): print(f"| {k} | {v:.0f} | {v / fwd:.2f} |", flush=True)

    peer = None
    if _has('captum') and captum_texts > 0:
        few = x[:captum_texts]
        logits = inference(model, few)
        torch.testing.assert_close(one_chunk_logits(model, few), logits, rtol=1e-4, atol=1e-5)
        classes = logits.argmax(1)
        ours = statistics.median(_timed(lambda: gradcam(few, classes)) for _ in range(max(repeats, 3))) * 1000
        extrapolate = captum_texts * STEPS > 4 * BS and not full_captum  # more than 4 passes of 32 rows
        theirs = captum_time(model, few, classes, extrapolate) * 1000  # once: it is the slow one
        how = 'from 1 and 2 steps' if extrapolate else 'timed'
        peer = (ours, theirs, how)
        print(f"\nOn the first {captum_texts} texts: fastcam GradCAM {ours:.0f} ms, captum LayerIntegratedGradients "
              f"({STEPS} steps, {how}) {theirs:.0f} ms: {theirs / ours:.1f}x", flush=True)

    mem = {k: measure_memory(config, k, threads) for k in MEMORY_OPS}
    print("\nPeak memory above the loaded model and input (same batch), each in its own process:\n")
    print("| operation | extra MiB | process peak MiB | extra / forward's |\n|---|---|---|---|")
    base = mem['forward']['extra_mib']
    for k, v in mem.items():
        print(f"| {MEMORY_OPS[k]} | {v['extra_mib']:.0f} | {v['peak_mib']:.0f} | {v['extra_mib'] / base:.2f} |")

    ratios = [('GradCAM 1 class / inference forward', one / fwd, '<= 1.3', one / fwd <= 1.3),
              ('GradCAM both classes / 1 class', med['fastcam GradCAM, both classes (one forward)'] / one, '', None)]
    if peer: ratios.append((f'captum LayerIntegratedGradients ({STEPS} steps, {peer[2]}) / fastcam GradCAM, '
                            f'{captum_texts} texts', peer[1] / peer[0], '>= 20', peer[1] / peer[0] >= 20))
    ratios += [('peak memory above baseline: GradCAM / inference forward', mem['gradcam']['extra_mib'] / base,
                '<= 1.1', mem['gradcam']['extra_mib'] / base <= 1.1),
               ('process peak memory: GradCAM / inference forward',
                mem['gradcam']['peak_mib'] / mem['forward']['peak_mib'], '<= 1.1',
                mem['gradcam']['peak_mib'] / mem['forward']['peak_mib'] <= 1.1)]
    met = lambda ok: '' if ok is None else 'yes' if ok else 'NO'
    print("\n| ratio | measured | target | met |\n|---|---|---|---|")
    for name, r, target, ok in ratios: print(f"| {name} | {r:.2f} | {target} | {met(ok)} |")

    title = f"bench_text (AWD_LSTM, {config})"
    record(f"{title}: time against one inference forward", ['contender', 'ms / batch', '/ inference forward'],
           [[k, round(v), round(v / fwd, 2)] for k, v in med.items()], notes=setup, threads=threads)
    record(f"{title}: peak memory", ['operation', 'extra MiB', 'process peak MiB', "extra / forward's"],
           [[MEMORY_OPS[k], round(v['extra_mib']), round(v['peak_mib']), round(v['extra_mib'] / base, 2)]
            for k, v in mem.items()],
           notes=f"batch {BS} x {TOKENS} tokens, each operation in its own process (MALLOC_MMAP_THRESHOLD_=65536); "
                 f"extra: the resident peak above the loaded model and input", threads=threads)
    notes = setup + (f"; captum ({peer[2]}) once on the first {captum_texts} texts against fastcam on the same texts"
                     if peer else '')
    return record(f"{title}: ratios and targets", ['ratio', 'measured', 'target', 'met'],
                  [[name, round(r, 2), target, met(ok)] for name, r, target, ok in ratios], notes=notes,
                  threads=threads)

def main():
    p = argparse.ArgumentParser()
    p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--captum-texts', type=int, default=BS, help='texts of the batch captum explains (0: none)')
    p.add_argument('--full-captum', action='store_true', help="time captum's 50 steps even where it takes long")
    p.add_argument('--config', choices=list(CONFIGS), default='full')
    p.add_argument('--memory-child', default=None)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    if a.memory_child: return memory_child(a.config, a.memory_child)
    print(f"fastcam bench_text: CPU, {a.threads} threads, torch {torch.__version__}")
    command = (f"python bench/bench_text.py --repeats {a.repeats} --captum-texts {a.captum_texts} --config {a.config}"
               + (' --full-captum' if a.full_captum else ''))
    print('\nrecorded in', bench(a.config, a.repeats, a.threads, a.captum_texts, a.full_captum, command))

if __name__ == '__main__': main()
