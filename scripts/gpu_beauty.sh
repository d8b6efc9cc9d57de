#!/usr/bin/env bash
# GALRec against SASRec on one GPU machine: the main comparison (SASRec and GALRec, seeds 2020-2022) and GALRec's
# ablation (seed 2020, paired against the full GALRec), both under the cpu profile's budget, run side by side with
# several runs at once (a run of this size leaves a GPU and its CPU cores mostly idle).
#
#   scripts/gpu_beauty.sh DATA_PATH OUTPUT [SECONDS] [--key=value ...]
#
# DATA_PATH holds amazon-beauty/ (DATASET=... for another dataset); OUTPUT receives main/ and ablation/, each a
# benchmark output folder (JSON, markdown, chart, per-run logs and per-user metrics). SECONDS (default 3000) bounds
# both benchmarks: at that time they stop as on Ctrl-C, keeping every finished run (run the script again to go on).
# Further --key=value pairs apply to every run. Environment: DATASET (amazon-beauty), MODELS (SASRec,GALRec,
# GALRec-noLM), SEEDS (3), MAIN_JOBS (6), ABLATION (the labels below; empty: no ablation), ABLATION_JOBS (6),
# PROFILE (cpu).
set -u
if [ $# -lt 2 ]; then
    sed -n '2,12p' "$0" >&2
    exit 2
fi
data=$1
out=$2
seconds=${3:-3000}
shift $(($# < 3 ? $# : 3))
dataset=${DATASET:-amazon-beauty}
ablation=${ABLATION-SASRec,GALRec,GALRec-noLM,GALRec-paper,GALRec-noContrast,GALRec-frozen,GALRec-noText,GALRec-noHops,GALRec-noQueue,GALRec-noL1,GALRec-noL2,GALRec-noL3}
common=(--dataset="$dataset" --data_path="$data" --profile="${PROFILE:-cpu}")
mkdir -p "$out"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}  # many runs at once: a few threads each

timeout --signal=TERM --kill-after=60 "$seconds" python3 -m recbole_galrec.benchmark "${common[@]}" \
    --models="${MODELS:-SASRec,GALRec,GALRec-noLM}" --seeds="${SEEDS:-3}" --jobs="${MAIN_JOBS:-6}" --reference=SASRec \
    --output="$out/main" "$@" > "$out/main.txt" 2>&1 &
main=$!
status_ablation=skipped
if [ -n "$ablation" ]; then
    timeout --signal=TERM --kill-after=60 "$seconds" python3 -m recbole_galrec.benchmark "${common[@]}" \
        --models="$ablation" --seeds=2020, --jobs="${ABLATION_JOBS:-6}" --reference=GALRec \
        --output="$out/ablation" "$@" > "$out/ablation.txt" 2>&1 &
    ablation_pid=$!
fi
wait $main
status_main=$?
if [ -n "$ablation" ]; then
    wait $ablation_pid
    status_ablation=$?
fi
tail -n 40 "$out"/*.txt
echo "main benchmark exit status $status_main, ablation $status_ablation"
