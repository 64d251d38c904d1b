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
