"Pictures copied from the run's data cache are the pictures `make_digits` makes, and each folder keeps its own copy."
import fastcam.data
from fastcam.all import make_digits
from data_cache import DataCache

def _files(path) -> dict:
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob('*')) if p.is_file()}

def test_copies_equal_a_direct_make(tmp_path):
    plain = fastcam.data.make_digits  # this run's own cache may wrap it: unwrap to make the reference directly
    plain = getattr(plain, '__wrapped__', plain)
    expected = plain(tmp_path/'direct', n_train=12, n_valid=4, seed=3)
    cache = DataCache(tmp_path/'cache')
    make = lambda path, **kw: cache.make_digits(plain, path, n_train=12, n_valid=4, seed=3, **kw)
    first, second = make(tmp_path/'a'), make(tmp_path/'b')
    assert (cache.made, cache.copied) == (1, 2)  # made once in the cache, copied to both folders
    for df, folder in ((first, 'a'), (second, 'b')):
        assert df.equals(expected), folder
        assert _files(tmp_path/folder) == _files(tmp_path/'direct'), folder
    (tmp_path/'a'/first.fname[0]).write_bytes(b'changed')  # a copy, not a link: the other folder keeps its picture
    assert (tmp_path/'b'/first.fname[0]).read_bytes() == (tmp_path/'direct'/first.fname[0]).read_bytes()
    make(tmp_path/'a')  # a folder that holds a data set is make_digits' own business: nothing is copied over it
    assert (tmp_path/'a'/first.fname[0]).read_bytes() == b'changed' and cache.copied == 2
    other = cache.make_digits(plain, tmp_path/'c', n_train=12, n_valid=4, seed=4)  # other arguments, other pictures
    assert cache.made == 2 and not other.equals(expected)

def test_installed_for_the_package():
    "conftest.py installs the cache before the test modules import: they, the package's modules and `fastcam.all` call it."
    import fastcam.cli, fastcam.all
    assert make_digits is fastcam.data.make_digits is fastcam.cli.make_digits is fastcam.all.make_digits
    assert hasattr(make_digits, '__wrapped__')
