#!/usr/bin/env bash
# The paper path's GPU check, on a machine with a GPU and no network (README: "Paper preset", GPU check).
#   make gpu-wheels                              # first, where PyPI is reachable: .whl/ (git ignores it: the
#                                                # device run must carry it, e.g. carry: [".whl"])
#   bash scripts/gpu-check.sh OUT [options]      # there; options go to benchmarks/gpu_check.py (--help)
# Installs .whl/ (this package's wheel among them, for its entry points) into a folder of their own
# (GPU_CHECK_SITE, default /tmp/vem-site) beside the image's packages - scipy only where the image's is too new
# for clean-fid -, then runs benchmarks/gpu_check.py from this checkout (its code comes first on PYTHONPATH),
# which writes OUT/gpu_check.json, OUT/gpu_check.md and the logs.
set -euo pipefail
out=${1:?usage: scripts/gpu-check.sh OUT [options of benchmarks/gpu_check.py]}
shift
repo=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-python3}
site=${GPU_CHECK_SITE:-/tmp/vem-site}
wheels=${GPU_CHECK_WHEELS:-$repo/.whl}
shopt -s nullglob
all=("$wheels"/*.whl)
if [ ${#all[@]} -eq 0 ]; then
  echo "scripts/gpu-check.sh: no wheels in $wheels: run 'make gpu-wheels' where PyPI is reachable, and carry .whl" >&2
  exit 2
fi
need_scipy=$("$py" -c 'import scipy; print(int(tuple(map(int, scipy.__version__.split(".")[:2])) >= (1, 18)))' \
             2>/dev/null || echo 1)
install=()
for w in "${all[@]}"; do
  case "$(basename "$w")" in scipy-*) [ "$need_scipy" = 1 ] || continue ;; esac
  install+=("$w")
done
mkdir -p "$out"
# in one call: a second `--target` install would replace the folder's bin/ (Snakemake's command)
"$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" "${install[@]}"
export PYTHONPATH="$repo:$site${PYTHONPATH:+:$PYTHONPATH}" PATH="$site/bin:$PATH" PYTHONUNBUFFERED=1
{ nvidia-smi || true; } > "$out/nvidia-smi.txt" 2>&1
exec "$py" "$repo/benchmarks/gpu_check.py" --out "$out" "$@"
