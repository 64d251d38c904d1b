"""Write README.md from nbs/index.ipynb without Quarto: markdown cells as they are, code cells fenced, text outputs
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

if __name__ == '__main__':
    (ROOT/'README.md').write_text(readme_text(), encoding='utf-8')
    print(ROOT/'README.md')
