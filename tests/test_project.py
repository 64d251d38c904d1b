"The project's files agree with each other: package and notebooks, README and index, versions."
import configparser, json, shutil, subprocess, sys
from pathlib import Path
import fastcam

ROOT = Path(__file__).resolve().parents[1]
from tools.make_readme import readme_text

def test_package_matches_notebooks(tmp_path):
    for name in ['nbs', 'fastcam']: shutil.copytree(ROOT/name, tmp_path/name, ignore=shutil.ignore_patterns('__pycache__'))
    for name in ['pyproject.toml', 'settings.ini']: shutil.copy(ROOT/name, tmp_path/name)
    exe = Path(sys.executable).parent/'nbdev-export'
    subprocess.run([str(exe) if exe.exists() else 'nbdev-export'], cwd=tmp_path, check=True, capture_output=True)
    changed = [p.name for p in sorted((ROOT/'fastcam').glob('*.py'))
               if (tmp_path/'fastcam'/p.name).read_text() != p.read_text()]
    added = [p.name for p in (tmp_path/'fastcam').glob('*.py') if not (ROOT/'fastcam'/p.name).exists()]
    assert not changed and not added, (f"nbdev-export changes {changed} and adds {added}: edit the notebooks, run "
                                       f"nbdev-export, and commit both")

def test_readme_matches_index():
    assert (ROOT/'README.md').read_text(encoding='utf-8') == readme_text(), \
        "README.md is out of date with nbs/index.ipynb: run python tools/make_readme.py"

def test_readme_tables_match_notebooks():
    from tools.notebooks import TABLES_START, TABLES_END, notebook_tables
    text = (ROOT/'nbs'/'index.ipynb').read_text(encoding='utf-8')
    index = json.loads(text)
    source = next(''.join(c['source']) for c in index['cells'] if TABLES_START in ''.join(c['source']))
    tables = source[source.index(TABLES_START):source.index(TABLES_END) + len(TABLES_END)]
    assert tables == notebook_tables(ROOT/'nbs'), "the index's tables of notebooks and tutorials are out of date: run python tools/make_readme.py"

def test_versions_agree():
    cfg = configparser.ConfigParser(delimiters=['='])
    cfg.read(ROOT/'settings.ini')
    assert cfg['DEFAULT']['version'] == fastcam.__version__, "settings.ini and fastcam/__init__.py disagree on the version"

ROUND_2 = 'dcc712e'  # the first commit of house round 2, from which commit subjects keep to 72 characters

def test_commit_subjects_are_short():
    "`git log --oneline` stays readable: subjects of at most 72 characters, the detail in the body."
    known = subprocess.run(['git', 'cat-file', '-e', f'{ROUND_2}^{{commit}}'], cwd=ROOT, capture_output=True)
    if known.returncode != 0: return  # a shallow clone or an export without that history: nothing to check
    log = subprocess.run(['git', 'log', '--format=%h %s', f'{ROUND_2}^..HEAD'], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout.splitlines()
    long = [line for line in log if len(line.split(' ', 1)[1]) > 72]
    assert not long, f"commit subjects over 72 characters (put the detail in the body): {long}"
