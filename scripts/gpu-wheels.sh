#!/usr/bin/env bash
# The wheels the GPU machines' bare image lacks for the paper path's GPU check (envs/gpu-wheels.txt), for its
# Python (3.12) on x86-64 Linux, into DEST (default .whl/, ignored by git). Needs PyPI; run it where the
# project is set up:  make gpu-wheels  [GPU_PYTHON=3.12]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
py=${1:-python3}
dest=${2:-$repo/.whl}
ver=${GPU_PYTHON:-3.12}
mkdir -p "$dest"
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
    # no wheel on the index (an sdist alone): a pure-Python package builds into a wheel for any platform
    "$py" -m pip wheel -q --no-deps -w "$dest" "$req"
  fi
done < "$repo/envs/gpu-wheels.txt"
n=$(ls "$dest"/*.whl | wc -l)
size=$(du -cb "$dest"/*.whl | tail -1 | cut -f1)
echo "gpu-wheels: $n wheels, $((size / 1048576)) MiB in $dest"
