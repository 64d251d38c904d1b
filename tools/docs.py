"""The docs site's build steps, run by mkdocs through the thin hook docs/hooks.py: a site from the nbdev notebooks in
`nbs/`, without Quarto.

Each notebook is copied to `_proc/mkdocs/` for mkdocs-jupyter to render: cells marked `#| hide` are dropped, `#|`
directive lines are removed from the other cells, `show_doc` cells without output are dropped (the API pages document
those names), and links to other notebooks become links to their pages. If `python tools/execute.py` has left an
executed copy of a notebook in `_proc/executed/` and the notebook has not changed since, the copy's outputs (plots,
tables) are shown; otherwise the page shows the code without outputs. The navigation is made here too: the front page,
the tutorials, the notebooks in order, and an API page per module of `fastcam/`, rendered by mkdocstrings. The
benchmark figures (`bench/results.md`) are a page too."""
import hashlib, json, posixpath, re, shutil
from pathlib import Path
from mkdocs.plugins import event_priority
from mkdocs.structure.files import File
from tools.notebooks import cell_text, is_hidden, without_directives

ROOT = Path(__file__).resolve().parents[1]
NBS, LIB = ROOT/'nbs', ROOT/'fastcam'
STAGE, EXECUTED = ROOT/'_proc'/'mkdocs', ROOT/'_proc'/'executed'
RESULTS = ROOT/'bench'/'results.md'
ARCHITECTURE = ROOT/'ARCHITECTURE.md'
SKIP_MODULES = {'__init__', '_modidx', 'all'}
_SHOW_DOC = re.compile(r'^\s*show_doc\(.*\)\s*;?\s*$')
_NB_LINK = re.compile(r'\]\(([^)\s#:]+)\.ipynb(#[^)\s]*)?\)')

def notebooks() -> list:
    "The notebooks of `nbs/` as relative paths, leaving out folders and files whose names start with `_` or `.`."
    return sorted(p.relative_to(NBS) for p in NBS.rglob('*.ipynb')
                  if not any(part.startswith(('_', '.')) for part in p.relative_to(NBS).parts))

def modules() -> list:
    "The modules of the package that get an API page."
    return sorted(p.stem for p in LIB.glob('*.py') if p.stem not in SKIP_MODULES)

def source_hash(nb: dict) -> str:
    "A hash of a notebook's cells (types and sources): an executed copy is used only while it matches."
    cells = [(c['cell_type'], cell_text(c['source'])) for c in nb['cells']]
    return hashlib.sha1(json.dumps(cells).encode()).hexdigest()

def _page_dir(rel: str) -> str:
    "The folder URL of a notebook's page relative to the site root: '' for the front page."
    stem = posixpath.splitext(rel)[0]
    return '' if stem == 'index' else stem + '/'

def _relative(target: str, here: str) -> str:
    link = posixpath.relpath(target or '.', here or '.')
    return './' if link == '.' else link

def fix_links(text: str, rel: str) -> str:
    "Links to notebooks become relative links to their pages; `nbs/images/...` becomes the site's `images/...`."
    here = _page_dir(rel)
    if rel == 'index.ipynb': text = re.sub(r'\]\(nbs/', '](', text)  # the front page is written for the README, at the root
    def page(m):
        target = posixpath.normpath(posixpath.join(posixpath.dirname(rel), m.group(1) + '.ipynb'))
        link = _relative(_page_dir(target), here)
        return f"]({link if link.endswith('/') else link + '/'}{m.group(2) or ''})"
    text = _NB_LINK.sub(page, text).replace('](ARCHITECTURE.md)', f"]({_relative('ARCHITECTURE', here)}/)")
    return re.sub(r'\]\(nbs/images/', f"]({_relative('images', here)}/", text)

_BAR = re.compile(r'█|\|[-█]{8,}\|')

def clean_outputs(outputs: list) -> list:
    "Outputs as a page shows them: no stderr (warnings), and text streams as a terminal would leave them, bars gone."
    kept = []
    for out in outputs:
        if out.get('output_type') == 'stream':
            if out.get('name') == 'stderr': continue
            shown = lambda line: next((part for part in reversed(line.split('\r')) if part.strip()), '')  # after \r's
            lines = [shown(line) for line in cell_text(out['text']).split('\n')]
            text = '\n'.join(l.rstrip() for l in lines if l.strip() and not _BAR.search(l))
            if text: kept.append({**out, 'text': text + '\n'})
        else: kept.append(out)
    return kept

def clean_notebook(nb: dict, rel: str) -> dict:
    "`nb` as its page shows it: hidden cells, directives and progress bars gone, output-less `show_doc` cells dropped."
    cells = []
    for cell in nb['cells']:
        source = cell_text(cell['source'])
        cell = {**cell, 'metadata': {}}  # execnb's timings there are not valid nbformat
        if cell['cell_type'] == 'markdown':
            cells.append({**cell, 'source': fix_links(source, rel)})
            continue
        if cell['cell_type'] != 'code' or is_hidden(source): continue
        code = without_directives(source)
        outputs = clean_outputs(cell.get('outputs', []))
        lines = [l for l in code.split('\n') if l.strip()]
        if not lines or (not outputs and all(_SHOW_DOC.match(l) for l in lines)): continue
        cells.append({**cell, 'source': code, 'outputs': outputs})
    is_title = lambda c: c['cell_type'] == 'markdown' and re.match(r'#\s', cell_text(c['source']))
    title = next((i for i, c in enumerate(cells) if is_title(c)), 0)
    return {**nb, 'cells': cells[title:title + 1] + cells[:title] + cells[title + 1:]}  # title first, then imports

def with_outputs(nb: dict, rel: str) -> dict:
    "The executed copy of `nb` from `_proc/executed/` if it was made from the same cells, else `nb` itself."
    executed = EXECUTED/rel
    if not executed.exists(): return nb
    done = json.loads(executed.read_text(encoding='utf-8'))
    return done if done.get('metadata', {}).get('fastcam_docs', {}).get('source') == source_hash(nb) else nb

def _title(nb: dict, rel: str) -> str:
    if rel == 'index.ipynb': return 'Home'
    for cell in nb['cells']:
        m = re.search(r'^#\s+(.+)$', cell_text(cell['source']), re.M) if cell['cell_type'] == 'markdown' else None
        if m: return m.group(1).strip()
    return posixpath.basename(rel)

def on_config(config):
    "The navigation: home, tutorials, library notebooks, API reference."
    home, tutorials, library = [], [], []
    for rel in (p.as_posix() for p in notebooks()):
        entry = {_title(json.loads((NBS/rel).read_text(encoding='utf-8')), rel): rel}
        (home if rel == 'index.ipynb' else tutorials if rel.startswith('tutorials/') else library).append(entry)
    config['nav'] = home + [{'Architecture': ARCHITECTURE.name}, {'Tutorials': tutorials}, {'Notebooks': library},
                            {'API reference': [{f"fastcam.{m}": f"api/{m}.md"} for m in modules()]}]
    return config

@event_priority(100)  # before mkdocs-jupyter, which takes over the .ipynb files it finds
def on_files(files, config):
    "Stage the cleaned notebooks and the API pages, and add them and the notebooks' images to the site."
    shutil.rmtree(STAGE, ignore_errors=True)
    for rel in (p.as_posix() for p in notebooks()):
        nb = json.loads((NBS/rel).read_text(encoding='utf-8'))
        (STAGE/rel).parent.mkdir(parents=True, exist_ok=True)
        (STAGE/rel).write_text(json.dumps(clean_notebook(with_outputs(nb, rel), rel)), encoding='utf-8')
        files.append(File(rel, str(STAGE), config['site_dir'], config['use_directory_urls']))
    for image in sorted((NBS/'images').glob('*.*')):
        files.append(File(f"images/{image.name}", str(NBS), config['site_dir'], config['use_directory_urls']))
    files.append(File(ARCHITECTURE.name, str(ROOT), config['site_dir'], config['use_directory_urls']))  # the code's map
    if RESULTS.exists():  # the benchmark figures, which the front page cites
        rel = RESULTS.relative_to(ROOT).as_posix()
        files.append(File(rel, str(ROOT), config['site_dir'], config['use_directory_urls']))
    (STAGE/'api').mkdir(parents=True, exist_ok=True)
    for m in modules():
        (STAGE/'api'/f'{m}.md').write_text(f"# fastcam.{m}\n\n::: fastcam.{m}\n", encoding='utf-8')
        files.append(File(f"api/{m}.md", str(STAGE), config['site_dir'], config['use_directory_urls']))
    return files
