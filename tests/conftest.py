"""The suite runs on two pytest-xdist workers (`addopts` in pyproject.toml). Each worker's torch gets its share of the
cores, the long tests start first, so that the two workers finish together, and fits and digits pictures that several
tests repeat are trained and made once per run (tests/fit_cache.py, tests/data_cache.py). The process that hands the
tests to the workers runs none, so it imports neither torch nor fastcam: the workers start about 6 s sooner."""
import os, time
from pathlib import Path
import pytest

workers = int(os.environ.get('PYTEST_XDIST_WORKER_COUNT', '1'))
DATA = None  # the run's DataCache, in the processes that run tests

def _runs_no_tests(config) -> bool:
    "Whether this process is the xdist controller, which only hands the tests to its workers."
    if hasattr(config, 'workerinput') or not config.pluginmanager.hasplugin('xdist'): return False
    return config.getoption('dist', 'no') != 'no' and not config.getoption('collectonly', False)

def pytest_configure(config):
    "In each process that runs tests, before it imports them: threads, and the digits cache installed (data_cache.py)."
    global DATA
    if _runs_no_tests(config): return
    import torch
    from threadpoolctl import threadpool_limits
    import fastcam.all  # noqa: F401  (every module that DataCache patches)
    from data_cache import DataCache
    if workers > 1:
        share = max(1, (os.cpu_count() or 1) // workers)
        torch.set_num_threads(share)
        # numpy's and scipy's BLAS too (SpRAy's eigh, the peers' SVDs, scikit-learn): OpenBLAS threads that wait for a
        # core the other worker holds made a 300x300 eigh 60 to 120 times slower (1.5-3 s against 26 ms on one thread)
        threadpool_limits(share)
        os.environ.update({name: str(share) for name in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS')})
    # installed now, before the test modules import make_digits; its folder is the run's (the fit_cache fixture below)
    DATA = DataCache()
    DATA.install()

# Longest first (minutes on 2 CPU cores), each worker holding one test in reserve (--maxschedchunk 1): the first two go
# to one worker, the next two to the other. Tests that share a fit (tests/fit_cache.py) follow each other on one worker,
# so that neither waits while the other trains it: find_and_fix, then the shortcut tutorial, whose two fits are
# find_and_fix's; the callback tutorial, then quickstart and test_demo, whose fit is the callback tutorial's (watched by
# CAMCallback, which changes nothing in it, it trains and stores the plain fit). test_shortcuts and 18_concepts (the
# shortcut tutorial's fits) and test_shelf_metrics (quickstart's) start after those, so they replay the fits.
# 12_cluster's clean model is find_and_fix's clean model, which find_and_fix (or else 12_cluster) trains at its end:
# 12_cluster starts on the other worker long after it. The docs tests show the callback tutorial's executed copy
# (tests/executed.py), written long before they start.
LONG_FIRST = ['tutorials/find_and_fix', 'tutorials/shortcut', 'tutorials/callback', 'tutorials/quickstart',
              'test_demo.py::test_demo', 'tutorials/segmentation', '12_cluster', 'tutorials/text',
              'test_shortcuts.py', '18_concepts', 'test_shelf_metrics.py', 'tutorials/multilabel',
              'tutorials/your_data', 'index.ipynb', 'tutorials/signals', '10_metrics', '15_text', 'test_text.py',
              'test_shelf_methods.py', '04_methods', 'test_docs.py::test_every_notebook_and_module', 'test_store.py',
              'test_callback.py', '13_guidance', 'test_docs.py', '08_callback', 'test_distrib.py', '07_learner',
              '09_interpret', '14_cli', 'tutorials/volumes', 'test_zoo.py']

def _rank(item) -> int:
    return next((i for i, key in enumerate(LONG_FIRST) if key in item.nodeid), len(LONG_FIRST))

def pytest_collection_modifyitems(items):
    items.sort(key=_rank)  # stable: the order within a rank stays pytest's

@pytest.fixture(scope='session', autouse=True)
def fit_cache(tmp_path_factory):
    "One cache of fits for the whole run, in the folder the xdist workers of this run share."
    base = tmp_path_factory.getbasetemp()  # FASTCAM_FITS=folder keeps the fits from one run to the next (debugging)
    folder = os.environ.get('FASTCAM_FITS') or (base.parent if 'PYTEST_XDIST_WORKER' in os.environ else base)/'fits'
    from fit_cache import FitCache
    cache = FitCache(folder)
    uninstall = cache.install()
    DATA.folder = Path(folder).parent/'digits'
    yield cache
    uninstall()
    DATA.folder = None

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    "With FASTCAM_TIMELINE=file: one line per test (worker, start and end seconds, test) for tools/timeline.py."
    out, start = os.environ.get('FASTCAM_TIMELINE'), time.time()
    yield
    if out:
        with open(out, 'a') as f:
            f.write(f"{os.environ.get('PYTEST_XDIST_WORKER', 'main')}\t{start:.1f}\t{time.time():.1f}\t{item.nodeid}\n")
