"""Digits pictures shared by the tests of one pytest run.

`make_digits` makes the same pictures for the same arguments wherever it writes them (its seed decides everything): the
quickstart and callback tutorials, `fastcam demo` (tests/test_demo.py) and tests/test_shelf_metrics.py make the 3,600
pictures of its defaults; find_and_fix, the shortcut tutorial, 12_cluster, 18_concepts and tests/test_shortcuts.py the
same 2,400. `DataCache.install` (conftest.py's `pytest_configure`, before the test modules import `make_digits`) wraps
`make_digits` in the package's modules; once the run's cache folder is set (a fixture of the whole run), the first call
with a set of arguments makes the pictures there, under a file lock, so that the two xdist workers never make them
twice; a call for a fresh folder gets copies of those files (copies, not links: writing a picture in one folder never
changes another's), and then `make_digits` itself reads them there as it reads any folder it made before. A folder that
already holds a data set is left to `make_digits`, which keeps it or makes it again. The notebooks keep their ordinary
calls; the cache lives in the run's temporary folder."""
import functools, hashlib, inspect, json, shutil, sys
from pathlib import Path
from filelock import FileLock
import fastcam.data


class DataCache:
    "Data sets of `make_digits` made once in `folder` and copied to every later folder that asks for the same."
    def __init__(self, folder=None):
        self.folder = folder  # None: no cache (yet), every call is a plain one
        self.made, self.copied = 0, 0  # in this process

    def make_digits(self, original, *args, **kwargs):
        "`original(*args, **kwargs)`, with the pictures copied from the cache when they were made before."
        bound = inspect.signature(original).bind(*args, **kwargs)
        bound.apply_defaults()
        params = {k: v for k, v in bound.arguments.items() if k not in ('path', 'force')}
        target = Path(bound.arguments['path'])
        if self.folder is None or bound.arguments['force'] or (target/'labels.csv').exists():
            return original(*args, **kwargs)
        Path(self.folder).mkdir(parents=True, exist_ok=True)
        made = Path(self.folder)/hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]
        with FileLock(f'{made}.lock'):
            if not (made/'labels.csv').exists(): self.made += 1
            original(made, **params)  # makes the pictures the first time; later, finds them complete
        shutil.copytree(made, target, dirs_exist_ok=True)
        self.copied += 1
        return original(target, **params)  # reads the labels of the complete copy

    def install(self):
        "Route `make_digits` of every loaded fastcam module through the cache; returns a function that undoes it."
        original = fastcam.data.make_digits
        @functools.wraps(original)
        def make_digits(*args, **kwargs): return self.make_digits(original, *args, **kwargs)
        modules = [m for name, m in list(sys.modules.items())
                   if name.split('.')[0] == 'fastcam' and getattr(m, 'make_digits', None) is original]
        for m in modules: m.make_digits = make_digits
        def uninstall():
            for m in modules: m.make_digits = original
        return uninstall
