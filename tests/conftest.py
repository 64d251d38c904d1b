"""The suite runs on two pytest-xdist workers (`addopts` in pyproject.toml). Each worker's torch gets its share of the
cores, and the long tests start first, so that the two workers finish together."""
import os
import torch

workers = int(os.environ.get('PYTEST_XDIST_WORKER_COUNT', '1'))
if workers > 1: torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))

# Longest first (minutes on 2 CPU cores), each worker holding one test in reserve (--maxschedchunk 1). A second test
# that takes seconds follows the demo, so that the worker running the demo does not hold a long test in reserve.
LONG_FIRST = ['test_demo.py::test_demo', 'test_project.py::test_versions_agree', 'tutorials/find_and_fix',
              'tutorials/quickstart', 'tutorials/shortcut', 'tutorials/multilabel', 'tutorials/segmentation',
              '11_cluster', 'tutorials/callback', 'tutorials/your_data', 'test_docs.py', '07_metrics', '05_callback',
              'test_callback.py', 'test_store.py', '12_guidance', 'test_zoo.py']

def _rank(item) -> int:
    return next((i for i, key in enumerate(LONG_FIRST) if key in item.nodeid), len(LONG_FIRST))

def pytest_collection_modifyitems(items):
    items.sort(key=_rank)  # stable: the order within a rank stays pytest's
