"The demo a new user runs first: its figures meet the targets, the cache makes a second run fast, the CLI works."
import subprocess, sys
from pathlib import Path
import matplotlib
import pytest
matplotlib.use('Agg')
from fastcam.cli import run_demo, main

@pytest.fixture(scope='module')
def demo(tmp_path_factory):
    path = tmp_path_factory.mktemp('demo')
    return path, run_demo(path, out=path/'demo.png')

def test_demo_meets_its_targets(demo):
    path, f = demo
    print(f)
    assert f['accuracy'] >= 0.95, f"demo accuracy {f['accuracy']:.1%} is below the 95% target"
    assert f['pointing_game_cam'] >= 0.90, f"CAM pointing game {f['pointing_game_cam']:.1%} is below the 90% target"
    assert f['pointing_game_gradcam'] >= 0.90, f"Grad-CAM pointing game {f['pointing_game_gradcam']:.1%} < 90%"
    assert f['pointing_game_cam'] > 3 * f['chance']
    assert (path/'demo.png').stat().st_size > 10_000

def test_demo_reports_every_method(demo):
    from fastcam.learner import all_methods
    from fastcam.data import digits_dls, cam_learner
    path, f = demo
    report = f['report']
    print(report.round(3).to_string())
    learn = cam_learner(digits_dls(path/'data'))
    assert list(report.index) == [m.__name__ for m in all_methods(learn.model)]
    assert report.attrs['items'] == 100
    assert ((report.iloc[:, :4] >= 0) & (report.iloc[:, :4] <= 1)).all().all()
    # on the demo model CAM points at the digit in the report's items as in the whole validation set
    assert report.loc['CAM', 'pointing_game'] >= 0.85
    # a map that marks the digit: removing what it marks first lowers the class score faster than adding it back
    assert report.loc['CAM', 'deletion_auc'] < report.loc['CAM', 'insertion_auc']

def test_second_run_loads_the_cache(demo, capsys):
    path, f = demo
    assert main(['demo', '--path', str(path), '-o', str(path/'again.png'), '--report-items', '8']) == 0
    out = capsys.readouterr().out
    assert 'loaded the trained model' in out and 'training 0 s' in out
    assert f"{f['accuracy']:.1%}" in out
    assert 'every method on 8 validation items' in out and 'GradCAMPlusPlus' in out

def test_console_script_is_installed():
    exe = Path(sys.executable).parent/'fastcam'
    out = subprocess.run([str(exe) if exe.exists() else 'fastcam', '--help'], capture_output=True, text=True, check=True)
    assert 'demo' in out.stdout and 'show' in out.stdout

def test_fastcam_show_with_an_exported_learner(demo, tmp_path):
    from fastcam.data import digits_dls, cam_learner
    import torch
    path, f = demo
    learn = cam_learner(digits_dls(path/'data'))
    learn.model.load_state_dict(torch.load(path/'demo_model.pth'))
    learn.export(tmp_path/'export.pkl')
    image = path/'data'/learn.dls.valid_ds.items.fname.iloc[0]
    assert main(['show', str(image), '--learner', str(tmp_path/'export.pkl'), '--cls', '3',
                 '-o', str(tmp_path/'cam.png')]) == 0
    assert (tmp_path/'cam.png').stat().st_size > 5_000
