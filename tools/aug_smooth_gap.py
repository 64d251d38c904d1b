"""Why aug_smooth scales each augmentation's map before averaging: fastcam's Grad-CAM with aug_smooth=True against
pytorch-grad-cam's, beside two other ways of combining the six maps (raw average; scaled at the layer's resolution).
Printed the max gap after per-image min-max (ENGINE, issue 24): ours 2.4e-7; raw 0.035 / 0.089; layer resolution 3.7e-3.

    python tools/aug_smooth_gap.py"""
import sys, torch
sys.path.insert(0, str(__import__('pathlib').Path(__file__).resolve().parents[1]/'tests'))
import test_engine_options as t
from fastcam.all import GradCAM, resize_maps
import fastcam.engine as E
torch.set_num_threads(1)
from torchvision.models import resnet18
torch.manual_seed(0)
model, x, targets = resnet18(num_classes=10).eval(), torch.randn(2, 3, 64, 64), torch.tensor([[1], [4]])
for layer in ['layer3', 'layer4']:
    theirs, _ = t.peer(model, layer, x, targets, aug_smooth=True)
    ours = GradCAM(model, layer)(x, targets, aug_smooth=True)
    print(layer, 'ours', (t.minmax(resize_maps(ours, (64, 64))) - t.minmax(theirs)).abs().max().item())
    # alternatives: raw average, and layer-resolution normalization
    old = E._deaugment
    def raw(maps, size):
        n = len(E._AUGMENTATIONS); m = maps.unflatten(0, (n, -1))
        fl = torch.tensor([f for f, _ in E._AUGMENTATIONS]).view(n, *[1]*(m.ndim-1))
        return torch.where(fl, m.flip(-1), m).mean(0)
    def lowres(maps, size):
        n = len(E._AUGMENTATIONS); m = maps.unflatten(0, (n, -1))
        fl = torch.tensor([f for f, _ in E._AUGMENTATIONS]).view(n, *[1]*(m.ndim-1))
        return E.normalize_maps(torch.where(fl, m.flip(-1), m)).mean(0)
    for name, f in [('raw', raw), ('lowres', lowres)]:
        E._deaugment = f
        o = GradCAM(model, layer)(x, targets, aug_smooth=True)
        print(layer, name, (t.minmax(resize_maps(o, (64, 64))) - t.minmax(theirs)).abs().max().item())
    E._deaugment = old
