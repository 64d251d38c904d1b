"""The mkdocs hook that mkdocs.yml names. mkdocs loads this file by its path, so the repository root (which holds the
`tools` package) may not be on `sys.path` yet; the work is done in tools/docs.py."""
import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[1])
if ROOT not in sys.path: sys.path.insert(0, ROOT)
from tools.docs import on_config, on_files  # noqa: E402, F401  (the events mkdocs calls)
