"""The project's build scripts, run from the repository root: `python tools/make_readme.py` (README.md from
nbs/index.ipynb), `python tools/execute.py` (notebooks run for the docs site), `tools/docs.py` (the mkdocs hook's work),
`tools/notebooks.py` (the notebook cleaning they share), `python tools/nbcells.py` (editing cells by id). Tests import
them as `tools.<name>` from the root."""
