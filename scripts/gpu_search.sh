#!/usr/bin/env bash
# The baselines' validation searches on one GPU machine: every configuration of each model's grid at once (one
# small RecBole run leaves a GPU and its CPU cores mostly idle), the grids side by side.
#
#   scripts/gpu_search.sh DATA_PATH OUTPUT SECONDS [--key=value ...]
#
# For each model of MODELS (default "SASRec GRU4Rec LightGCN") runs docs/search/<model>-<DATASET>.yaml (DATASET
# default amazon-beauty) with python -m recbole_galrec.benchmark.search --profile=cpu --seed=$SEED (default 2020)
# into OUTPUT/<model>/ (its search.md, search.json, each configuration's result and log; terminal output in
# OUTPUT/<model>.txt). SECONDS is every run's train_time_budget: a configuration still improving then stops
# there, is tested as it stands, and its result says time_budget_spent; run the search again with a larger
# budget to go on from its -last checkpoint by hand (--resume), or without one on a longer lease. Further
# arguments go to every search (--only=NAME,..., --select=viewed_filtered, --key=value settings).
set -u
if [ $# -lt 3 ]; then
    sed -n '2,14p' "$0" >&2
    exit 2
fi
data=$(realpath -m "$1")  # absolute: the script runs from the repository's root
out=$(realpath -m "$2")
seconds=$3
shift 3
dataset=${DATASET:-amazon-beauty}
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2  # the repository's root: grids by relative path
mkdir -p "$out"
pids=()
for model in ${MODELS:-SASRec GRU4Rec LightGCN}; do
    grid="docs/search/$(echo "$model" | tr '[:upper:]' '[:lower:]')-$dataset.yaml"
    if [ ! -f "$grid" ]; then
        echo "error: no grid $grid for $model on $dataset" >&2
        exit 2
    fi
    jobs=$(python3 -c "import sys, yaml; print(len(yaml.safe_load(open(sys.argv[1]))['configs']))" "$grid")
    python3 -m recbole_galrec.benchmark.search --model="$model" --dataset="$dataset" --data_path="$data" \
        --grid="$grid" --profile=cpu --seed="${SEED:-2020}" --jobs="$jobs" --output="$out/$model" \
        --train_time_budget="$seconds" "$@" > "$out/$model.txt" 2>&1 &
    pids+=($!)
done
status=0
for pid in "${pids[@]}"; do
    wait "$pid" || status=$?
done
tail -n 20 "$out"/*.txt
exit $status
