#!/usr/bin/env bash
# Set up a fresh machine: system libraries for Qt/OpenGL under Xvfb, a venv, the package with test extras.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
APT_PACKAGES="xvfb xauth libgl1 libegl1 libglib2.0-0 libfontconfig1 libdbus-1-3 libxkbcommon-x11-0 \
  libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-xinerama0 \
  libxcb-shape0 libxcb-cursor0 libxcb-xkb1 libxrender1 libxi6 libgl1-mesa-dri"
if [ "${SKIP_APT:-0}" != "1" ] && command -v apt-get >/dev/null; then
  missing=$(for p in $APT_PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
  if [ -n "$missing" ]; then
    SUDO=""; [ "$(id -u)" = "0" ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
  fi
fi
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --no-cache-dir --upgrade pip
# torch/torchvision first, pinned to the builds compressai works with on this machine kind
.venv/bin/python -m pip install -q --no-cache-dir "torch==2.14.1" "torchvision==0.29.1"
.venv/bin/python -m pip install -q --no-cache-dir -c requirements-lock.txt -e ".[testing]"
