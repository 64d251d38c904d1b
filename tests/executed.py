"""The docs site shows one tutorial with its outputs (tests/test_docs.py). Its notebook test runs it with
tools/execute.py, which keeps the copy with outputs, so that the docs tests do not run it (and train its model)
again."""
from pathlib import Path
from filelock import FileLock

ROOT = Path(__file__).resolve().parents[1]
DOCS_TUTORIAL = 'tutorials/callback.ipynb'  # the tutorial page whose figures the docs tests look at (a short training)

def executed_lock() -> FileLock:
    "Held while the executed copies in _proc/ are written or checked: the docs wait for a notebook test that runs."
    (ROOT/'_proc').mkdir(exist_ok=True)
    return FileLock(ROOT/'_proc'/'executed.lock')
