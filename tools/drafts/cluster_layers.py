"""Draft: does clustering finer maps recover more of the marked 7s? (11_cluster's setting: mark on 40% of the 7s.)

    python tools/drafts/cluster_layers.py   # trains once (cached in /tmp), then clusters the maps of several layers"""
import tempfile, torch
from pathlib import Path
from fastai.vision.all import set_seed
from fastcam.data import make_digits, mark_digits, digits_dls
from fastcam.learner import cam_learner
from fastcam.cluster import cluster_maps
from fastcam.core import GradCAM

torch.set_num_threads(1)
root = Path(tempfile.gettempdir())/'fastcam_cluster'
make_digits(root/'clean', n_train=2000, n_valid=400)
marked_df = mark_digits(root/'clean', root/'marked', '7', fraction=0.4, seed=0)
set_seed(42)
dls = digits_dls(root/'marked', bs=32)
learn = cam_learner(dls, ps=0.1)
weights = root/'draft_model.pth'
if weights.exists(): learn.model.load_state_dict(torch.load(weights))
else:
    with learn.no_bar(): learn.fit_one_cycle(3, 1e-2)
    torch.save(learn.model.state_dict(), weights)
dl = dls.test_dl(marked_df, with_labels=True)
boxes = torch.tensor(marked_df[['x0', 'y0', 'x1', 'y1']].to_numpy(dtype='float32'))
marked = torch.tensor(marked_df.marked.to_numpy())
seven = learn.class_index('7')
for name, kw in [('CAM body 8x8', {}), ('GradCAM layer1 16x16', dict(method=GradCAM, layer='0.4')),
                 ('GradCAM layer2.0 8x8', dict(method=GradCAM, layer='0.5.0'))]:
    res = learn.cam_dl(dl, cls='target', progress=False, **kw)
    for nn_ in (10,):
        found = cluster_maps(res, seven, boxes=boxes, img_size=64, outside=True, n_neighbors=nn_)
        flagged = found.flagged_items()
        hits = int(marked[flagged].sum())
        print(name, tuple(res.maps.shape[-2:]), nn_, found, f"precision {hits / max(1, len(flagged)):.3f} recall {hits / int(marked.sum()):.3f}", flush=True)
