#!/usr/bin/env bash
# Run CI's command N times back to back, each in a fresh clone of HEAD, while
# scripts/cpu_burner.py keeps every core at LOAD (default 0.5): the check that the suite holds
# on a shared, loaded machine. Prints one line per run (result and minutes) and a summary.
#
#   bash scripts/soak.sh [RUNS=3] [LOAD=0.5]
#
# Logs go to $SOAK_DIR (default /tmp/greenroom-soak): run-N.log, and summary.txt.
set -uo pipefail
runs=${1:-3}
load=${2:-0.5}
repo=$(cd "$(dirname "$0")/.." && pwd)
out=${SOAK_DIR:-/tmp/greenroom-soak}
mkdir -p "$out"
python3 "$repo/scripts/cpu_burner.py" --cores "$(nproc)" --load "$load" --seconds $((runs * 3600)) &
burner=$!
trap 'kill $burner 2>/dev/null' EXIT
failed=0
for i in $(seq 1 "$runs"); do
    clone="$out/clone-$i"
    rm -rf "$clone" && git clone -q "$repo" "$clone"
    commit=$(git -C "$clone" rev-parse --short HEAD)
    start=$(date +%s)
    (cd "$clone" && CI=true bash .ci/run) >"$out/run-$i.log" 2>&1
    rc=$?
    mins=$(( ($(date +%s) - start) / 60 ))
    tail_line=$(grep -E '^=+ .*(passed|failed).* in ' "$out/run-$i.log" | tail -1)
    if [[ -z $tail_line ]] && grep -q '^+\++ Timeout +\++$' "$out/run-$i.log"; then
        tail_line="stopped by pytest-timeout (a test hung; its stacks are in run-$i.log)"
    fi
    line="run $i of $runs (commit $commit, burner $load): exit $rc after ${mins} min: $tail_line"
    echo "$line" | tee -a "$out/summary.txt"
    [[ $rc -eq 0 ]] || failed=$((failed + 1))
done
echo "$((runs - failed)) of $runs runs passed" | tee -a "$out/summary.txt"
exit $((failed > 0))
