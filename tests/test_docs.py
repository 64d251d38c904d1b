"The docs site builds from the notebooks with mkdocs --strict, and its pages hide nbdev's directives."
import json, os, re, subprocess, sys
from pathlib import Path
import numpy as np
import pytest
from filelock import FileLock  # installed with torch

ROOT = Path(__file__).resolve().parents[1]
for module in ['mkdocs', 'material', 'mkdocs_jupyter', 'mkdocstrings_handlers.python']:
    pytest.importorskip(module, reason=f"{module} is not installed, so the docs cannot be built: pip install -e "
                                       f"'.[dev]' (mkdocs, mkdocs-material, mkdocs-jupyter, mkdocstrings-python)")
sys.path.insert(0, str(ROOT/'docs'))
from hooks import clean_notebook, fix_links, notebooks, modules

@pytest.fixture(scope='module')
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp('site')
    env = {**os.environ, 'NO_MKDOCS_2_WARNING': '1'}
    command = [sys.executable, '-m', 'mkdocs', 'build', '--strict', '-f', str(ROOT/'mkdocs.yml'), '-d', str(out)]
    (ROOT/'_proc').mkdir(exist_ok=True)
    with FileLock(ROOT/'_proc'/'mkdocs.lock'):  # the build stages the notebooks in _proc/: one build at a time
        run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env)
    assert run.returncode == 0, f"mkdocs build --strict failed:\n{run.stdout}\n{run.stderr}"
    return out

def _page(site, rel: str) -> Path:
    stem = rel[:-len('.ipynb')]
    return site/('index.html' if stem == 'index' else f"{stem}/index.html")

def test_every_notebook_and_module_has_a_page(site):
    missing = [str(rel) for rel in notebooks() if not _page(site, rel.as_posix()).exists()]
    missing += [m for m in modules() if not (site/'api'/m/'index.html').exists()]
    assert not missing, f"no page for {missing}"

def test_pages_hide_directives(site):
    shown = [rel.as_posix() for rel in notebooks() if re.search(r'#\|', _page(site, rel.as_posix()).read_text())]
    assert not shown, f"nbdev directives (#| ...) show in the pages of {shown}"

def test_api_pages_come_from_docstrings(site):
    text = (site/'api'/'metrics'/'index.html').read_text()
    assert 'energy_in_box' in text and 'Share of each map' in text

def test_cleaning_a_notebook():
    nb = {'cells': [{'cell_type': 'code', 'source': '#| hide\nfrom fastcore.test import *', 'outputs': []},
                    {'cell_type': 'code', 'source': '#| export\ndef f(): pass', 'outputs': []},
                    {'cell_type': 'code', 'source': 'show_doc(f)', 'outputs': []},
                    {'cell_type': 'markdown', 'source': 'See [the shortcut](tutorials/shortcut.ipynb#fixing-it).'}]}
    cells = clean_notebook(nb, 'index.ipynb')['cells']
    assert [c['source'] for c in cells] == ['def f(): pass', 'See [the shortcut](tutorials/shortcut/#fixing-it).']
    assert fix_links('[q](quickstart.ipynb)', 'tutorials/shortcut.ipynb') == '[q](../quickstart/)'
    assert fix_links('[m](../07_metrics.ipynb)', 'tutorials/shortcut.ipynb') == '[m](../../07_metrics/)'
    assert fix_links('![d](nbs/images/d.png)', 'index.ipynb') == '![d](images/d.png)'

def _chromium():
    import shutil
    return next((p for p in map(shutil.which, ['chromium', 'chromium-browser', 'google-chrome']) if p), None)

def _screenshot(browser, page: Path, png: Path):
    command = [browser, '--headless=new', '--no-sandbox', '--disable-gpu', '--hide-scrollbars',
               f'--screenshot={png}', '--window-size=1200,1600', page.as_uri()]
    subprocess.run(command, capture_output=True, timeout=120)
    assert png.exists(), f"{browser} wrote no screenshot of {page}"
    from PIL import Image
    import numpy as np
    return np.asarray(Image.open(png).convert('RGB')).astype(int)

def test_front_page_shows_the_maps(site, tmp_path):
    "In a real browser, the front page draws the demo picture (image, CAM, Grad-CAM): without the file, it does not."
    browser = _chromium()
    if browser is None: pytest.skip("no Chromium to look at the pages with (Debian: apt install chromium)")
    import shutil
    with_image = _screenshot(browser, site/'index.html', tmp_path/'with.png')
    broken = tmp_path/'broken'
    shutil.copytree(site, broken)
    (broken/'images'/'fastcam_demo.png').unlink()
    without = _screenshot(browser, broken/'index.html', tmp_path/'without.png')
    changed = (np.abs(with_image - without).sum(-1) > 60).mean()
    assert changed > 0.1, f"the demo picture changes only {changed:.1%} of the page: it does not render"
    def heat(shot):  # the warm colours of the maps' hot spots (the header's orange is on both screenshots)
        r, g, b = shot[..., 0], shot[..., 1], shot[..., 2]
        return ((r > 180) & (b < 150) & (r - b > 80)).mean()
    assert heat(with_image) - heat(without) > 0.001, "the maps' colours are missing from the front page"
