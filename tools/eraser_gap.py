"""Why the fix of a corner mark on 100% of the 7s fell 2.5-3 points below the clean model: ShortcutEraser variants on
bench_shortcuts' corner data (CONCEPTS, issue 25). The spot's box (its cells plus one around them) put noise on digits
and pasted pieces of 7s on other classes; erasing only the mark's cell gave 94.5%.

    python tools/eraser_gap.py [seed]"""
import sys
sys.path.insert(0, str(__import__('pathlib').Path(__file__).resolve().parents[1]/'bench'))
import torch
torch.set_num_threads(1)
from bench_shortcuts import variant_data, train, judge, ROOT
from fastcam.shortcuts import ShortcutEraser, find_shortcuts
seed = int(sys.argv[1]) if len(sys.argv) > 1 else 0
path, kind = variant_data('corner', 2000, 400)
clean = ROOT/'2000_400'/'clean'
learn, _ = train(path, seed, 3)
found = find_shortcuts(learn)
found.test()
conf = found.confirmed()
print('confirmed', conf, flush=True)
def per_class(l):
    from fastcam.data import read_labels
    df = read_labels(clean/'labels.csv'); valid = df[df.is_valid]
    labels = torch.tensor([l.dls.vocab.o2i[x] for x in valid.label])
    with l.no_bar(): pred = l.get_preds(dl=l.dls.test_dl([clean/f for f in valid.fname]))[0].argmax(1)
    return {l.dls.vocab[c]: round((pred == labels)[labels == c].float().mean().item(), 3) for c in range(10)}
for name, kw, box in [('p=0.75', dict(p=0.75), None), ('tight box p=0.5', dict(p=0.5), (0, 0, 8, 8))]:
    if box is not None:
        for c in conf: c.box = box
    fixed, _ = train(path, seed, 3, cbs=ShortcutEraser(conf, **kw))
    print(name, judge(fixed, clean, kind), per_class(fixed), flush=True)
