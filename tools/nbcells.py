"""Small notebook-editing helper for developers: list, show, replace, insert and delete cells of an .ipynb by id.

    python tools/nbcells.py list nbs/03_engine.ipynb
    python tools/nbcells.py show nbs/03_engine.ipynb CELL_ID
    python tools/nbcells.py replace nbs/03_engine.ipynb CELL_ID FILE      # FILE holds the new source ('-' for stdin)
    python tools/nbcells.py insert nbs/03_engine.ipynb AFTER_ID code|markdown FILE
    python tools/nbcells.py delete nbs/03_engine.ipynb CELL_ID
    python tools/nbcells.py sub nbs/03_engine.ipynb CELL_ID OLD_FILE NEW_FILE  # replace one occurrence of a text
"""
import json, sys, uuid
from pathlib import Path

def _load(p): return json.loads(Path(p).read_text(encoding='utf-8'))
def _save(p, nb): Path(p).write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n', encoding='utf-8')
def _src(c): return ''.join(c['source']) if isinstance(c['source'], list) else c['source']
def _read(f): return sys.stdin.read() if f == '-' else Path(f).read_text(encoding='utf-8')
def _lines(text): return text.splitlines(keepends=True)

def _index(nb, cid):
    for i, c in enumerate(nb['cells']):
        if c.get('id', '').startswith(cid): return i
    raise SystemExit(f"no cell with id {cid}")

def new_cell(kind, text):
    c = dict(cell_type=kind, id=uuid.uuid4().hex[:8], metadata={}, source=_lines(text))
    if kind == 'code': c.update(execution_count=None, outputs=[])
    return c

def main(cmd, path, *args):
    nb = _load(path)
    if cmd == 'list':
        for i, c in enumerate(nb['cells']):
            first = _src(c).split('\n')
            head = ' | '.join(l for l in first[:2] if l)[:110]
            print(f"{i:3} {c.get('id', '?'):>8} {c['cell_type'][:4]} {head}")
        return
    if cmd == 'show':
        print(_src(nb['cells'][_index(nb, args[0])]))
        return
    if cmd == 'replace': nb['cells'][_index(nb, args[0])]['source'] = _lines(_read(args[1]))
    elif cmd == 'insert':
        i = -1 if args[0] == 'START' else _index(nb, args[0])
        nb['cells'].insert(i + 1, new_cell(args[1], _read(args[2])))
        print(nb['cells'][i + 1]['id'])
    elif cmd == 'delete': del nb['cells'][_index(nb, args[0])]
    elif cmd == 'sub':  # sub NB CELL OLD_FILE NEW_FILE: replace the one occurrence of OLD's text by NEW's in the cell
        cell = nb['cells'][_index(nb, args[0])]
        old, new, src = _read(args[1]), _read(args[2]), _src(cell)
        if src.count(old) != 1: raise SystemExit(f"the old text occurs {src.count(old)} times in cell {args[0]}")
        cell['source'] = _lines(src.replace(old, new))
    else: raise SystemExit(__doc__)
    _save(path, nb)

if __name__ == '__main__': main(*sys.argv[1:])
