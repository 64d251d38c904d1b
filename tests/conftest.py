"""The suite runs on two pytest-xdist workers (`addopts` in pyproject.toml). Each worker's torch gets its share of the
cores, the long tests start first, so that the two workers finish together, and fits that several tests repeat are
trained once per run (tests/fit_cache.py)."""
import os
import pytest
import torch
from fit_cache import FitCache

workers = int(os.environ.get('PYTEST_XDIST_WORKER_COUNT', '1'))
if workers > 1: torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))

# Longest first (minutes on 2 CPU cores), each worker holding one test in reserve (--maxschedchunk 1): the worker that
# runs find_and_fix runs the shortcut tutorial next, whose two fits are two of find_and_fix's (tests/fit_cache.py);
# 12_cluster trains the clean model that quickstart, later, loads; the docs tests follow the callback tutorial, whose
# executed copy they show (tests/executed.py).
LONG_FIRST = ['tutorials/find_and_fix', 'tutorials/shortcut', 'tutorials/segmentation', 'test_demo.py::test_demo',
              '12_cluster', 'tutorials/multilabel', 'tutorials/quickstart', 'tutorials/callback', 'tutorials/your_data',
              'test_docs.py', 'test_zoo.py', 'test_callback.py', 'test_store.py', 'test_distrib.py', '08_callback',
              '10_metrics', '13_guidance']

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
