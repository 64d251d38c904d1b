"""The demo a new user runs first: its figures meet the targets, the cache makes a second run fast, the CLI works.

The demo trains with its defaults, the README's figures. The quickstart tutorial trains the same model on the same
pictures, so the suite trains it once (tests/fit_cache.py; conftest.py runs the two on one worker). The report (every
method, Score-CAM's 128 forwards per item among them) scores 8 items here instead of the CLI's 40: the quickstart
tutorial scores the same model on 32."""
import shutil, sys
import pytest
from pathlib import Path
import matplotlib
matplotlib.use('Agg')
from fastcam.cli import run_demo, main

REPORT_ITEMS = 8

def test_demo(tmp_path, capsys):
    "One test, so that the demo trains once also when pytest-xdist spreads the tests over workers."
    f = run_demo(tmp_path, out=tmp_path/'demo.png', report_items=REPORT_ITEMS)
    check_targets(tmp_path, f)
    check_report(tmp_path, f)
    check_second_run(tmp_path, f, capsys)
    check_show_with_an_exported_learner(tmp_path)

def check_targets(path, f):
    print(f)
    assert f['accuracy'] >= 0.95, f"demo accuracy {f['accuracy']:.1%} is below the 95% target"
    assert f['pointing_game_cam'] >= 0.90, f"CAM pointing game {f['pointing_game_cam']:.1%} is below the 90% target"
    assert f['pointing_game_gradcam'] >= 0.90, f"Grad-CAM pointing game {f['pointing_game_gradcam']:.1%} < 90%"
    assert f['pointing_game_cam'] > 3 * f['chance']
    assert (path/'demo.png').stat().st_size > 10_000

def check_report(path, f):
    from fastcam.methods import all_methods
    from fastcam.data import digits_dls
    from fastcam.learner import cam_learner
    report = f['report']
    print(report.round(3).to_string())
    learn = cam_learner(digits_dls(path/'data'))
    assert list(report.index) == [m.__name__ for m in all_methods(learn.model)]
    assert report.attrs['items'] == REPORT_ITEMS
    assert ((report.iloc[:, :4] >= 0) & (report.iloc[:, :4] <= 1)).all().all()
    # on the demo model CAM points at the digit in the report's items as in the whole validation set
    assert report.loc['CAM', 'pointing_game'] >= 0.85
    # a map that marks the digit: removing what it marks first lowers the class score faster than adding it back
    assert report.loc['CAM', 'deletion_auc'] < report.loc['CAM', 'insertion_auc']

def check_second_run(path, f, capsys):
    capsys.readouterr()
    assert main(['demo', '--path', str(path), '-o', str(path/'again.png'), '--report-items', '2']) == 0
    out = capsys.readouterr().out
    assert 'loaded the trained model' in out and 'training 0 s' in out
    assert f"{f['accuracy']:.1%}" in out
    assert 'every method on 2 validation items' in out and 'GradCAMPlusPlus' in out

def test_console_script_is_installed(capsys):
    """`pip install -e .` made the `fastcam` command, and it lists the commands. The your_data tutorial runs it as a
    program; here it runs in this process, which saves the 7 s a fresh process takes to import fastai."""
    from importlib.metadata import entry_points
    assert {e.name: e.value for e in entry_points(group='console_scripts')}.get('fastcam') == 'fastcam.cli:main'
    assert (Path(sys.executable).parent/'fastcam').exists() or shutil.which('fastcam')
    with pytest.raises(SystemExit) as exit_:
        main(['--help'])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert 'demo' in out and 'show' in out

def check_show_with_an_exported_learner(path):
    from fastcam.data import digits_dls
    from fastcam.learner import cam_learner
    import torch
    learn = cam_learner(digits_dls(path/'data'))
    learn.model.load_state_dict(torch.load(path/'demo_model.pth'))
    learn.export(path/'export.pkl')
    image = path/'data'/learn.dls.valid_ds.items.fname.iloc[0]
    assert main(['show', str(image), '--learner', str(path/'export.pkl'), '--cls', '3',
                 '-o', str(path/'cam.png')]) == 0
    assert (path/'cam.png').stat().st_size > 5_000
