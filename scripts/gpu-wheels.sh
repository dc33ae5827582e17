#!/usr/bin/env bash
# The wheels the GPU machines' bare image lacks for the paper path's GPU check (envs/gpu-wheels.txt), for its
# Python (3.12) on x86-64 Linux, plus this package's own wheel (its entry points; built here, so the image needs
# no setuptools of a given version), into DEST (default .whl/, ignored by git: name it in the device run's
# `carry`). DEST's old wheels are removed first (two versions of one package stop the install there). Needs
# PyPI; run it where the project is set up:  make gpu-wheels  [GPU_PYTHON=3.12]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
py=${1:-python3}
dest=${2:-$repo/.whl}
ver=${GPU_PYTHON:-3.12}
mkdir -p "$dest"
rm -f "$dest"/*.whl     # (DEST's own wheels too: give it a folder of its own)
shopt -s nullglob
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 \
         manylinux1_x86_64; do
  platforms+=(--platform "$p")
done
while read -r req; do
  req=${req%%#*}; req=${req//[[:space:]]/}
  [ -n "$req" ] || continue
  if ! "$py" -m pip download -q --no-deps --only-binary=:all: --python-version "$ver" --implementation cp \
       "${platforms[@]}" -d "$dest" "$req" 2>/dev/null; then
    # no wheel on the index (an sdist alone): built here, which is right only for a pure-Python package
    rm -rf "${tmp:?}"/*
    "$py" -m pip wheel -q --no-deps -w "$tmp" "$req"
    built=("$tmp"/*.whl)
    [ ${#built[@]} -gt 0 ] || { echo "gpu-wheels: building $req gave no wheel" >&2; exit 1; }
    for w in "${built[@]}"; do
      case "$w" in
        *-py3-none-any.whl|*-py2.py3-none-any.whl) mv "$w" "$dest"/ ;;
        *) echo "gpu-wheels: $req has no wheel for Python $ver and builds to $(basename "$w") here" >&2; exit 1 ;;
      esac
    done
  fi
done < "$repo/envs/gpu-wheels.txt"
"$py" -m pip wheel -q --no-deps --no-build-isolation -w "$dest" "$repo"
n=$(ls "$dest"/*.whl | wc -l)
size=$(du -cb "$dest"/*.whl | tail -1 | cut -f1)
echo "gpu-wheels: $n wheels, $((size / 1048576)) MiB in $dest"
