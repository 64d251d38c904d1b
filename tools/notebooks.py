"""Reading nbdev notebooks as their readers see them, for the README (tools/make_readme.py) and the docs site
(tools/docs.py): a cell's text, its `#|` directives, whether it is hidden or not run."""
import re

DIRECTIVE = re.compile(r'^\s*#\|')
_HIDE = re.compile(r'^\s*#\|\s*hide\s*$', re.M)
_NO_EVAL = re.compile(r'^\s*#\|\s*eval:\s*false', re.M)

def cell_text(source) -> str:
    "A cell's source as one string (notebooks store it as a string or a list of lines)."
    return ''.join(source) if isinstance(source, list) else source

def is_hidden(source: str) -> bool:
    "Whether a code cell is marked `#| hide`: run, but shown to no reader."
    return bool(_HIDE.search(source))

def is_not_run(source: str) -> bool:
    "Whether a code cell is marked `#| eval: false`, or is the one that calls `nbdev_export()`."
    return bool(_NO_EVAL.search(source)) or 'nbdev_export()' in source

def without_directives(source: str) -> str:
    "The code of a cell without its `#|` directive lines, and without blank lines at either end."
    return '\n'.join(l for l in source.split('\n') if not DIRECTIVE.match(l)).strip('\n')

def _title_and_subtitle(nb: dict) -> tuple:
    "The H1 title and the `> ` subtitle of a notebook's first markdown cell that has an H1."
    for cell in nb['cells']:
        text = cell_text(cell['source'])
        if cell['cell_type'] == 'markdown' and text.lstrip().startswith('# '):
            lines = text.strip().split('\n')
            subtitle = next((l[1:].strip() for l in lines if l.startswith('>')), '')
            return lines[0][2:].strip(), subtitle
    return '', ''

def _default_exp(nb: dict) -> str | None:
    for cell in nb['cells']:
        m = re.search(r'^\s*#\|\s*default_exp\s+(\S+)', cell_text(cell['source']), re.M)
        if m: return m.group(1)
    return None

TABLES_START, TABLES_END = '<!-- tables: made by tools/make_readme.py from the notebooks -->', '<!-- /tables -->'

def notebook_tables(nbs) -> str:
    "The README's tables of library notebooks (module, what it owns) and tutorials, read off the notebooks in `nbs`."
    import json
    from pathlib import Path
    nbs = Path(nbs)
    rows = ['| notebook | module | what it owns |', '|---|---|---|']
    for p in sorted(nbs.glob('[0-9]*.ipynb')):
        nb = json.loads(p.read_text(encoding='utf-8'))
        module, (title, subtitle) = _default_exp(nb), _title_and_subtitle(nb)
        rows.append(f"| [`{p.stem}`](nbs/{p.name}) | `fastcam.{module}` | {subtitle} |")
    tutorials = ['| tutorial | what it shows |', '|---|---|']
    for p in sorted((nbs/'tutorials').glob('*.ipynb')):
        title, subtitle = _title_and_subtitle(json.loads(p.read_text(encoding='utf-8')))
        tutorials.append(f"| [{title}](nbs/tutorials/{p.name}) | {subtitle} |")
    return '\n'.join([TABLES_START, '', *rows, '', *tutorials, '', TABLES_END])
