#!/usr/bin/env bash
# The smoke preset through profiles/slurm on a one-node localhost SLURM, compared with a local run.
#
#   scripts/slurm-smoke.sh [LOCAL_RUN_DIR]
#
# LOCAL_RUN_DIR: a directory holding a finished local smoke run's results/ (CI passes the repo after its
# smoke step); without it a local run is made first in a scratch directory. Prints both wall times.
# SLURM_SMOKE_TARGETS: what to build (default: the workflow's `all`, every table). CI builds Table 5 and
# edges2shoes' Original (16 jobs: every job rule a table's cells need) and compares those outputs with the
# local run's (--subset).
# SLURM_SMOKE_AFTER: a file that appears once LOCAL_RUN_DIR's run has finished. The SLURM run is then made
# while the local one is still being made (CI: its waits on the scheduler overlap the local run's work), and
# the comparison waits for the file (at most 40 min).
# Exit 0 with a "SKIP:" line where SLURM cannot be set up here (not root / no apt).
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
SNAKEMAKE="${SNAKEMAKE:-$REPO/.venv/bin/snakemake}"
PY="${PY:-$REPO/.venv/bin/python}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/vem-slurm-smoke.XXXXXX")"
export PATH="$(dirname "$PY"):$PATH"

rc=0
was_running=0
"$REPO/scripts/slurm-localhost.sh" running 2>/dev/null && was_running=1
"$REPO/scripts/slurm-localhost.sh" start || rc=$?
if [[ $rc -eq 3 ]]; then echo "SKIP: SLURM smoke test: SLURM cannot be set up on this machine (see above)"; exit 0; fi
# leave the machine as found: a cluster started here is stopped again (its /etc/slurm/slurm.conf link too,
# which would otherwise make every later Snakemake start wait ~9 s on `scontrol` of a dead controller)
[[ $was_running -eq 1 ]] || trap '"$REPO/scripts/slurm-localhost.sh" stop || true' EXIT
[[ $rc -eq 0 ]] || exit $rc
eval "$("$REPO/scripts/slurm-localhost.sh" env)"
"$PY" -c "import snakemake_executor_plugin_slurm" 2>/dev/null \
    || "$PY" -m pip install -q "snakemake-executor-plugin-slurm>=2.8"

read -r -a TARGETS <<< "${SLURM_SMOKE_TARGETS:-}"
SUBSET=()
[[ ${#TARGETS[@]} -eq 0 ]] || SUBSET=(--subset)
LOCAL="${1:-}"
if [[ -z "$LOCAL" ]]; then
    LOCAL="$WORK/local"
    mkdir -p "$LOCAL"
    t0=$(date +%s)
    timeout -k 10 1200 "$SNAKEMAKE" "${TARGETS[@]}" -s "$REPO/Snakefile" --directory "$LOCAL" --cores 2 \
        --configfile "$REPO/config/smoke.yaml" --quiet rules > "$WORK/local.log" 2>&1
    echo "local smoke run: $(( $(date +%s) - t0 )) s"
fi
mkdir -p "$WORK/slurm"
t0=$(date +%s)
if ! timeout -k 10 1500 "$SNAKEMAKE" "${TARGETS[@]}" -s "$REPO/Snakefile" --directory "$WORK/slurm" \
        --configfile "$REPO/config/smoke.yaml" --workflow-profile "$REPO/profiles/slurm" --slurm-no-account \
        --jobs 4 --quiet rules > "$WORK/slurm.log" 2>&1; then
    tail -40 "$WORK/slurm.log"
    echo "SLURM smoke run failed; log: $WORK/slurm.log"
    exit 1
fi
echo "SLURM smoke run: $(( $(date +%s) - t0 )) s ($(grep -c 'has been submitted with SLURM jobid' "$WORK/slurm.log" || true) jobs submitted)"
if [[ -n "${SLURM_SMOKE_AFTER:-}" ]]; then
    t0=$(date +%s)
    until [[ -e "$SLURM_SMOKE_AFTER" ]]; do
        (( $(date +%s) - t0 < 2400 )) || { echo "the local run did not finish ($SLURM_SMOKE_AFTER never appeared)"; exit 1; }
        sleep 2
    done
    echo "waited $(( $(date +%s) - t0 )) s for the local run"
fi
"$PY" "$REPO/scripts/compare_runs.py" "${SUBSET[@]}" "$LOCAL" "$WORK/slurm"
