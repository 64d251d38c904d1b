"""Write README.md from nbs/index.ipynb without Quarto (after rewriting the index's tables of notebooks and tutorials
from the notebooks, so that they cannot drift): markdown cells as they are, code cells fenced, text outputs
kept, `#| hide` cells and `#|` directive lines dropped. Run from the repository root: python tools/make_readme.py"""
import json, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if __name__ == '__main__' and str(ROOT) not in sys.path: sys.path.insert(0, str(ROOT))  # run as a script
from tools.notebooks import cell_text, is_hidden, without_directives

def readme_text(nb_path=ROOT/'nbs'/'index.ipynb') -> str:
    "The README's text for the notebook at `nb_path`."
    nb = json.loads(Path(nb_path).read_text(encoding='utf-8'))
    parts = []
    for cell in nb['cells']:
        source = cell_text(cell['source'])
        if cell['cell_type'] == 'markdown':
            parts.append(source.strip())
            continue
        if cell['cell_type'] != 'code' or is_hidden(source): continue
        code = without_directives(source).strip()
        if code: parts.append(f"```python\n{code}\n```")
        for out in cell.get('outputs', []):
            text = out.get('text') or out.get('data', {}).get('text/plain')
            if text: parts.append(f"```\n{cell_text(text).rstrip()}\n```")
    return '<!-- generated from nbs/index.ipynb by tools/make_readme.py: edit the notebook, not this file -->\n\n' \
        + '\n\n'.join(p for p in parts if p) + '\n'

def update_index_tables(nb_path=ROOT/'nbs'/'index.ipynb') -> bool:
    "Rewrite the notebook and tutorial tables in `nb_path` from the notebooks themselves; True if anything changed."
    from tools.notebooks import TABLES_START, TABLES_END, notebook_tables
    nb = json.loads(Path(nb_path).read_text(encoding='utf-8'))
    for cell in nb['cells']:
        source = cell_text(cell['source'])
        if TABLES_START in source:
            start, end = source.index(TABLES_START), source.index(TABLES_END) + len(TABLES_END)
            new = source[:start] + notebook_tables(Path(nb_path).parent) + source[end:]
            if new == source: return False
            cell['source'] = new.splitlines(keepends=True)
            Path(nb_path).write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n', encoding='utf-8')
            return True
    raise ValueError(f"no {TABLES_START} in {nb_path}: put the marker pair where the tables go")

if __name__ == '__main__':
    update_index_tables()
    (ROOT/'README.md').write_text(readme_text(), encoding='utf-8')
    print(ROOT/'README.md')
