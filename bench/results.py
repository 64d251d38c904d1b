"""The one file that holds the benchmark figures, `bench/results.md`: a section per table, each with the machine, the
versions and the date it was measured on. The bench scripts write it; the README and the notebooks cite it.

    from results import record   # in a bench script run as `python bench/<name>.py`
    record('bench_cam: CAM and Grad-CAM against one inference forward',
           ['contender', 'ms / batch', '/ inference forward'], rows, notes='resnet50, batch 8, 224 px, ...')

`record` replaces the section of that name (or appends it), leaving the others as they are."""
import datetime, os, platform, re
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

RESULTS = Path(__file__).resolve().parent/'results.md'
_TITLE = '# Benchmark results\n\nWritten by the scripts in `bench/` (`bench/results.py`); do not edit by hand.\n'

def _cpu() -> str:
    try: model = next(l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name'))
    except (OSError, StopIteration): model = platform.processor() or platform.machine()
    return f"{model}, {os.cpu_count()} CPUs"

def _versions() -> str:
    def v(name):
        try: return version(name)
        except PackageNotFoundError: return None
    found = [(name, v(name)) for name in ['torch', 'torchvision', 'fastai', 'fastcam', 'grad-cam']]
    return ', '.join(f"{name} {ver}" for name, ver in [('python', platform.python_version())] + found if ver)

def machine(threads: int | None = None) -> str:
    "One line: the CPU, the torch threads, the versions and today's date."
    import torch
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU'
    threads = torch.get_num_threads() if threads is None else threads
    return f"{_cpu()}, {device}, {threads} torch threads; {_versions()}; {datetime.date.today().isoformat()}"

def _table(header: list, rows: list) -> str:
    cell = lambda v: f"{v:.3g}" if isinstance(v, float) else str(v)
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    return '\n'.join(lines + ['| ' + ' | '.join(cell(v) for v in row) + ' |' for row in rows])

def sections(path: Path = RESULTS) -> dict:
    "The sections of the results file, `{name: text}`, in file order."
    text = path.read_text(encoding='utf-8') if path.exists() else ''
    parts = re.split(r'^## (.+)$', text, flags=re.M)  # [preamble, name, body, name, body, ...]
    return {name.strip(): body.strip() for name, body in zip(parts[1::2], parts[2::2])}

def record(name: str, # the section's title, e.g. 'bench_cam: CAM and Grad-CAM against one inference forward'
           header: list, # the table's column names
           rows: list, # the table's rows, each a list of values (floats are written with 3 significant digits)
           notes: str = '', # what was measured and how, written above the table
           threads: int | None = None, # the torch threads used; torch.get_num_threads() if None
           path: Path = RESULTS # the results file
          ) -> Path:
    "Write `rows` as the section `name` of the results file, with the machine, versions and date; returns the file."
    found = sections(path)
    body = f"Measured on: {machine(threads)}\n\n" + (f"{notes}\n\n" if notes else '') + _table(header, rows)
    found[name] = body
    path.write_text(_TITLE + ''.join(f"\n## {n}\n\n{b}\n" for n, b in found.items()), encoding='utf-8')
    return path
