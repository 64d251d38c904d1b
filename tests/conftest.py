"""The suite runs on two pytest-xdist workers (`addopts` in pyproject.toml). Each worker's torch gets its share of the
cores, the long tests start first, so that the two workers finish together, and fits that several tests repeat are
trained once per run (tests/fit_cache.py)."""
import os
import pytest
import torch
from fit_cache import FitCache

workers = int(os.environ.get('PYTEST_XDIST_WORKER_COUNT', '1'))
if workers > 1: torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))

# Longest first (minutes on 2 CPU cores), each worker holding one test in reserve (--maxschedchunk 1). Tests that share
# a fit (tests/fit_cache.py) follow each other: the worker that runs find_and_fix runs the shortcut tutorial next, whose
# two fits are find_and_fix's; quickstart trains the clean model before 12_cluster, on the other worker, reaches it (in
# the other order the two met at that fit and one waited for the other); the docs tests follow the callback tutorial,
# whose executed copy they show (tests/executed.py).
LONG_FIRST = ['tutorials/find_and_fix', 'tutorials/shortcut', 'tutorials/segmentation', 'tutorials/quickstart',
              'test_demo.py::test_demo', '12_cluster', 'tutorials/multilabel', 'tutorials/callback',
              'tutorials/your_data', 'index.ipynb', 'test_docs.py', '10_metrics', 'test_store.py', 'test_callback.py',
              '13_guidance', '08_callback', 'test_distrib.py', '07_learner', 'test_zoo.py']

def _rank(item) -> int:
    return next((i for i, key in enumerate(LONG_FIRST) if key in item.nodeid), len(LONG_FIRST))

def pytest_collection_modifyitems(items):
    items.sort(key=_rank)  # stable: the order within a rank stays pytest's

@pytest.fixture(scope='session', autouse=True)
def fit_cache(tmp_path_factory):
    "One cache of fits for the whole run, in the folder the xdist workers of this run share."
    base = tmp_path_factory.getbasetemp()
    cache = FitCache((base.parent if 'PYTEST_XDIST_WORKER' in os.environ else base)/'fits')
    uninstall = cache.install()
    yield cache
    uninstall()
