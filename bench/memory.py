"""Peak resident memory of one operation, for the bench scripts that run each operation in its own process.

    from memory import rss_kib, reset_peak, peak_kib   # in a bench script run as `python bench/<name>.py`
    base, reset = rss_kib(), reset_peak()
    ...                                                 # the operation
    above = peak_kib(reset) - base"""
import resource

def rss_kib() -> int:
    "This process's resident memory now, in KiB."
    with open('/proc/self/statm') as f: return int(f.read().split()[1]) * resource.getpagesize() // 1024

def reset_peak() -> bool:
    "Reset the process's resident high-water mark (Linux's `clear_refs` 5); whether it could."
    try:
        with open('/proc/self/clear_refs', 'w') as f: f.write('5')
        return True
    except OSError: return False

def peak_kib(reset: bool) -> int:
    "The resident peak since the reset (VmHWM), or over the process's life (`ru_maxrss`) where none was possible."
    if reset:
        with open('/proc/self/status') as f: return next(int(l.split()[1]) for l in f if l.startswith('VmHWM'))
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
