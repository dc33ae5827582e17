#!/usr/bin/env bash
# Put Fashion-MNIST into resources/fmnist: the files in $FMNIST_DIR if it is set, else Debian's
# dataset-fashion-mnist (offline mirror) when apt is usable, else torchvision's download (needs network, once).
set -euo pipefail
PY=${1:-python3}
deb=/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
if [ ! -f "$deb" ] && [ -z "${FMNIST_DIR:-}" ] && command -v apt-get >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
  echo "installing Debian's dataset-fashion-mnist ..."
  { $SUDO apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 \
    || { $SUDO apt-get update -q >/dev/null 2>&1 && $SUDO apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1; }; } \
    || echo "apt-get could not install dataset-fashion-mnist; trying the other sources"
fi
if [ -f "$deb" ] || [ -n "${FMNIST_DIR:-}" ]; then
  "$PY" -m vem fetch-fmnist --out resources/fmnist
else
  "$PY" -m vem fetch-fmnist --out resources/fmnist --download
fi
