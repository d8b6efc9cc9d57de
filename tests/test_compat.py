"""The compatibility fixes, and the no-ray install script's requirements against setup.cfg's."""

import configparser
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from recbole_galrec import compat
from recbole_galrec.config import build_config

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "scripts" / "install_no_ray.sh"


def test_numpy_aliases_recbole_reads():
    compat.apply()
    assert np.float_ is np.float64
    assert np.complex_ is np.complex128
    assert np.unicode_ is np.str_


def test_recbole_config_builds_under_this_numpy(workdir):
    # Config.compatibility_settings reads np.float_ and friends: the crash under numpy 2 without the aliases.
    from recbole.config import Config

    compat.apply()
    config = Config(model="Pop", dataset="ml-100k", config_dict={"show_progress": False})
    assert config["model"] == "Pop"


def test_dok_matrix_update_as_lightgcn_uses_it():
    compat.apply()
    adjacency = sp.dok_matrix((3, 3), dtype=np.float32)
    adjacency._update({(0, 1): 1, (1, 0): 1, (2, 2): 1})
    assert adjacency.nnz == 3
    assert adjacency.toarray().sum() == 3


def _requirements(lines):
    reqs = {}
    for line in lines:
        line = line.strip().strip('"')
        if not line or line.startswith("#"):
            continue
        name = re.match(r"[A-Za-z0-9_.-]+", line).group(0).lower()
        reqs[name] = line[len(name) :].replace(" ", "")
    return reqs


def _setup_cfg_requirements():
    parser = configparser.ConfigParser()
    parser.read(REPO_ROOT / "setup.cfg")
    return _requirements(parser["options"]["install_requires"].splitlines())


def _script_array(name):
    text = SCRIPT.read_text()
    body = re.search(rf"^{name}=\(\n(.*?)^\)", text, re.S | re.M)
    assert body, f"{name} not found in {SCRIPT.name}"
    return _requirements(body.group(1).splitlines())


def test_no_ray_script_installs_what_setup_cfg_requires():
    required = _setup_cfg_requirements()
    script = {**_script_array("RECBOLE_DEPS"), **_script_array("PACKAGE_DEPS")}
    for name, spec in required.items():
        if name in ("recbole", "torch"):  # recbole: installed without its dependencies; torch: the user's build
            continue
        assert script.get(name) == spec, f"{name}: setup.cfg says {spec!r}, {SCRIPT.name} says {script.get(name)!r}"
    assert "ray" not in script
    extra = set(_script_array("PACKAGE_DEPS")) - set(required)
    assert not extra, f"{SCRIPT.name} PACKAGE_DEPS names what setup.cfg does not require: {sorted(extra)}"
    assert "recbole==1.2.1" in SCRIPT.read_text()


@pytest.mark.parametrize("args", [["--help"], ["--nonsense"], ["--find-links", "/nonexistent-wheel-folder"]])
def test_no_ray_script_arguments(args):
    result = subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=30)
    if args == ["--help"]:
        assert result.returncode == 0 and "--find-links" in result.stdout
    else:
        assert result.returncode == 2 and "error:" in result.stderr


def test_runs_train_without_autograd_anomaly_mode(workdir):
    # RecBole's SINE module switches anomaly mode on when it is imported, and every import of RecBole's
    # sequential models imports it: without the fix the run below would train with anomaly mode on (slow).
    code = (
        "import sys, torch\n"
        "from recbole_galrec.config import build_config\n"
        "from recbole_galrec.lookup import get_model\n"
        "build_config('SASRec', 'ml-100k', config_dict={'show_progress': False})\n"
        "get_model('SASRec')\n"
        "print(torch.is_anomaly_enabled())\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=workdir, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "False"


def test_the_log_folder_is_made_before_recbole_looks_for_it(workdir, monkeypatch):
    """Two runs starting at once in one folder (a benchmark's or a search's workers) must not race on RecBole's
    check-then-create of ./log/<model>: the folder is made, race-free, before RecBole's init_logger checks it."""
    import recbole.utils.logger as recbole_logger

    from recbole_galrec import quick_start

    checked = []

    def strict_ensure_dir(path):
        checked.append(path)
        assert os.path.isdir(path), f"{path} was not made before RecBole's check"

    monkeypatch.setattr(recbole_logger, "ensure_dir", strict_ensure_dir)
    quick_start._start_logging(build_config("Pop", "ml-100k", config_dict={"show_progress": False}))
    assert checked == ["./log", "./log/Pop"]
