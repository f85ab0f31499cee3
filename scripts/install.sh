#!/usr/bin/env bash
# One-step install for the quickstart: solo-learn 1.0.6 (git, pinned), this plugin with its test
# extra, and Debian's Fashion-MNIST for the offline default (without it the first run downloads
# Fashion-MNIST through torchvision). PYTHON=... picks the interpreter (default: python3).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

# solo-learn's setup.py and lightning 2.1 import pkg_resources, gone from setuptools 82.
$PY -m pip install 'setuptools<82' wheel
if ! $PY -c "from importlib.metadata import version; assert version('solo-learn') == '1.0.6'" 2>/dev/null; then
  $PY -m pip install --no-build-isolation 'git+https://github.com/vturrisi/solo-learn.git@9187ea3'
fi
$PY -m pip install --no-build-isolation -e '.[test]'

if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null; then
  SUDO=$([ "$(id -u)" -eq 0 ] && echo "" || echo sudo)
  $SUDO apt-get install -y -q dataset-fashion-mnist \
    || { $SUDO apt-get update -q && $SUDO apt-get install -y -q dataset-fashion-mnist; } \
    || echo "note: dataset-fashion-mnist not installed; the first run downloads Fashion-MNIST"
fi
