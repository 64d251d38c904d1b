"""Write README.md from nbs/index.ipynb without Quarto: markdown cells as they are, code cells fenced, text outputs kept,
`#| hide` cells and `#|` directive lines dropped. Run: python tools/make_readme.py"""
import json, re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

def _text(src): return ''.join(src) if isinstance(src, list) else src

def _directives(lines): return [l for l in lines if re.match(r'^\s*#\|', l)]

def readme_text(nb_path=ROOT/'nbs'/'index.ipynb') -> str:
    "The README's text for the notebook at `nb_path`."
    nb = json.loads(Path(nb_path).read_text(encoding='utf-8'))
    parts = []
    for cell in nb['cells']:
        lines = _text(cell['source']).split('\n')
        if cell['cell_type'] == 'markdown':
            parts.append('\n'.join(lines).strip())
            continue
        if cell['cell_type'] != 'code': continue
        flags = ' '.join(_directives(lines))
        if re.search(r'\bhide\b', flags): continue
        code = '\n'.join(l for l in lines if not re.match(r'^\s*#\|', l)).strip()
        if code: parts.append(f"```python\n{code}\n```")
        for out in cell.get('outputs', []):
            text = out.get('text') or out.get('data', {}).get('text/plain')
            if text: parts.append(f"```\n{_text(text).rstrip()}\n```")
    return '<!-- generated from nbs/index.ipynb by tools/make_readme.py: edit the notebook, not this file -->\n\n' \
        + '\n\n'.join(p for p in parts if p) + '\n'

if __name__ == '__main__':
    (ROOT/'README.md').write_text(readme_text(), encoding='utf-8')
    print(ROOT/'README.md')
