"""The docs site builds from the notebooks with mkdocs --strict, its pages hide nbdev's directives, and in a real
browser the front page and a tutorial page show their maps."""
import os, re, shutil, subprocess, sys
from pathlib import Path
import numpy as np
import pytest
from filelock import FileLock  # installed with torch

ROOT = Path(__file__).resolve().parents[1]
for module in ['mkdocs', 'material', 'mkdocs_jupyter', 'mkdocstrings_handlers.python']:
    pytest.importorskip(module, reason=f"{module} is not installed, so the docs cannot be built: pip install -e "
                                       f"'.[dev]' (mkdocs, mkdocs-material, mkdocs-jupyter, mkdocstrings-python)")
from tools.docs import NBS, clean_notebook, fix_links, notebooks, modules, with_outputs
from tools.notebooks import cell_text
from executed import DOCS_TUTORIAL as TUTORIAL, executed_lock

def _executed(rel: str) -> bool:
    "Whether tools/execute.py has left a copy of `nbs/rel` with outputs that matches the notebook."
    import json
    nb = json.loads((NBS/rel).read_text(encoding='utf-8'))
    return with_outputs(nb, rel) is not nb

@pytest.fixture(scope='module')
def site(tmp_path_factory):
    "The site, built after running the tutorial (if its executed copy is missing or stale), so that it shows outputs."
    run_id = os.environ.get('PYTEST_XDIST_TESTRUNUID')  # the same in every worker of one pytest run
    # one build per run: the second xdist worker reuses the first one's site instead of building it again (a minute)
    out = ROOT/'_proc'/f'site-{run_id}' if run_id else tmp_path_factory.mktemp('site')
    # no search index: building it (parsing every page's HTML, base64 figures included) took 13 of the build's 31 s,
    # and no test looks at it
    env = {**os.environ, 'NO_MKDOCS_2_WARNING': '1', 'FASTCAM_DOCS_SEARCH': 'false'}
    command = [sys.executable, '-m', 'mkdocs', 'build', '--strict', '-f', str(ROOT/'mkdocs.yml'), '-d', str(out)]
    (ROOT/'_proc').mkdir(exist_ok=True)
    with FileLock(ROOT/'_proc'/'mkdocs.lock'):  # the build stages the notebooks in _proc/: one build at a time
        if (out/'.built').exists(): return out
        for old in (ROOT/'_proc').glob('site-*'): shutil.rmtree(old, ignore_errors=True)  # earlier runs' sites
        with executed_lock():  # the tutorial's notebook test writes the copy; it runs first (conftest.LONG_FIRST)
            if not _executed(TUTORIAL):  # trains the tutorial's model: a minute on a CPU
                subprocess.run([sys.executable, str(ROOT/'tools'/'execute.py'), TUTORIAL], cwd=ROOT, check=True,
                               capture_output=True, text=True, env={**env, 'MPLBACKEND': 'Agg'})
        run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env)
        assert run.returncode == 0, f"mkdocs build --strict failed:\n{run.stdout}\n{run.stderr}"
        (out/'.built').touch()
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

def test_benchmark_figures_have_a_page(site):
    assert (site/'bench'/'results'/'index.html').exists(), "bench/results.md, which the front page cites, has no page"

def test_tutorial_page_has_its_figures(site):
    "The executed tutorial's figures are in its page, as images."
    figures = _page(site, TUTORIAL).read_text().count('src="data:image/png;base64,')
    assert figures >= 3, f"the page of {TUTORIAL} holds {figures} figures: it does not show the executed notebook"

def test_cleaning_a_notebook():
    nb = {'cells': [{'cell_type': 'code', 'source': '#| hide\nfrom fastcore.test import *', 'outputs': []},
                    {'cell_type': 'code', 'source': '#| export\ndef f(): pass', 'outputs': []},
                    {'cell_type': 'code', 'source': 'show_doc(f)', 'outputs': []},
                    {'cell_type': 'markdown', 'source': 'See [the shortcut](tutorials/shortcut.ipynb#fixing-it).'}]}
    cells = clean_notebook(nb, 'index.ipynb')['cells']
    assert [cell_text(c['source']) for c in cells] == ['def f(): pass',
                                                       'See [the shortcut](tutorials/shortcut/#fixing-it).']
    assert fix_links('[q](quickstart.ipynb)', 'tutorials/shortcut.ipynb') == '[q](../quickstart/)'
    assert fix_links('[m](../10_metrics.ipynb)', 'tutorials/shortcut.ipynb') == '[m](../../10_metrics/)'
    assert fix_links('![d](nbs/images/d.png)', 'index.ipynb') == '![d](images/d.png)'

def _chromium():
    return next((p for p in map(shutil.which, ['chromium', 'chromium-browser', 'google-chrome']) if p), None)

def _screenshot(browser, page: Path, png: Path, height: int = 1600):
    "What Chromium draws of `page` in a window 1200 px wide and `height` px high, as an RGB array."
    profile = png.with_suffix('.profile')
    profile.mkdir()
    command = [browser, '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
               '--disable-background-networking', '--disable-component-update', '--disable-sync', '--hide-scrollbars',
               f'--user-data-dir={profile}', f'--screenshot={png}', f'--window-size=1200,{height}', page.as_uri()]
    subprocess.run(command, capture_output=True, timeout=120)
    assert png.exists(), f"{browser} wrote no screenshot of {page}"
    from PIL import Image
    return np.asarray(Image.open(png).convert('RGB')).astype(int)

def _heat(shot) -> float:
    "The share of the warm colours of the maps' hot spots (the header's orange is on every screenshot)."
    r, b = shot[..., 0], shot[..., 2]
    return ((r > 180) & (b < 150) & (r - b > 80)).mean()

@pytest.fixture
def browser():
    found = _chromium()
    if found is None: pytest.skip("no Chromium to look at the pages with (Debian: apt-get install chromium)")
    return found

def test_front_page_shows_the_maps(site, browser, tmp_path):
    "In a real browser, the front page draws the demo picture (image, CAM, Grad-CAM): without the file, it does not."
    with_image = _screenshot(browser, site/'index.html', tmp_path/'with.png')
    broken = tmp_path/'broken'
    shutil.copytree(site, broken)
    (broken/'images'/'fastcam_demo.png').unlink()
    without = _screenshot(browser, broken/'index.html', tmp_path/'without.png')
    changed = (np.abs(with_image - without).sum(-1) > 60).mean()
    assert changed > 0.1, f"the demo picture changes only {changed:.1%} of the page: it does not render"
    assert _heat(with_image) - _heat(without) > 0.001, "the maps' colours are missing from the front page"

def test_tutorial_page_shows_the_maps(site, browser, tmp_path):
    "In a real browser, the tutorial page draws its figures: with its images removed, the maps' colours are gone."
    page = _page(site, TUTORIAL)
    shown = _screenshot(browser, page, tmp_path/'tutorial.png', height=8000)
    html = page.read_text()
    page.write_text(re.sub(r'src="data:image/png;base64,[^"]*"', 'src=""', html))
    try: blank = _screenshot(browser, page, tmp_path/'blank.png', height=8000)
    finally: page.write_text(html)
    assert _heat(shown) - _heat(blank) > 0.001, f"the maps' colours are missing from the page of {TUTORIAL}"
