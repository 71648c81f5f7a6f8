#!/usr/bin/env bash
# Usage: examples/hillstrom/run.sh DATA_DIR OUT_DIR
# DATA_DIR holds hillstrom_email_2008.parquet.
# Validates, builds features (as of the campaign date and two weeks after) and loads into
# OUT_DIR/nba.db; then trains the next-action model twice, to maximise visits and to
# maximise spend (each with its own MLflow store, OUT_DIR/visits and OUT_DIR/spend), prints
# each champion's quality report; then serves each model that became champion with
# `nba score` as of the campaign date, on the store in OUT_DIR/nba.db (OUT_DIR/<name>/
# scores.parquet; the first model served also stores its answers as the accounts' scores),
# and stops if a served answer recommends no_action (actions rank by uplift over it). The last
# line is one JSON object with the results: per metric the learned policy's and the best
# single action's DR values on the held-out half, side by side with their 95 % intervals,
# and under "served" per model what `nba score --json` said (or why it was not served).
set -euo pipefail
# the script's directory, also when run as `bash run.sh` from inside it
case ${BASH_SOURCE[0]} in */*) here=${BASH_SOURCE[0]%/*} ;; *) here=. ;; esac
. "$here/../run_example.sh"
loaded=$(run_example hillstrom "$here/mapping.yaml" "2008-03-01 2008-03-15" "$@") || {
    code=$?
    if [[ -n ${loaded:-} ]]; then printf '%s\n' "$loaded"; fi
    exit "$code"
}
# Absolute paths: each training runs inside its own directory (MLflow keeps its artifacts
# next to where it runs).
here=$(cd "$here" && pwd)
data_dir=$(cd "$1" && pwd)
out_dir=$(cd "$2" && pwd)

# train NAME REWARD EVENT_TYPE: train and report one next-action model; prints the
# `nba train --json` object last
train() {
    local dir="$out_dir/$1" result
    mkdir -p "$dir"
    result=$(cd "$dir" && ${NBA:-nba} train next-content --data "$data_dir" \
        --mapping "$here/mapping.yaml" --tracking-uri "sqlite:///$dir/mlflow.db" \
        --reward "$2" --reward-event "$3" --json) || return
    (cd "$dir" && ${NBA:-nba} report --tracking-uri "sqlite:///$dir/mlflow.db") >&2 || return
    printf '%s\n' "$result"
}
# The flat comparison object of a `nba train --json` object (it has no nested object).
comparison() {
    local rest=${1#*\"comparison\": }
    printf '%s}' "${rest%%\}*}"
}
# field JSON NAME: the text of a string or number field of a flat part of JSON
field() {
    if [[ $1 =~ \"$2\":\ \"([^\"]*)\" || $1 =~ \"$2\":\ ([-0-9.eE]+) ]]; then
        printf '%s' "${BASH_REMATCH[1]}"
    fi
}

# serve NAME STORE_SCORES: score every stored account with NAME's champion; prints the
# `nba score --json` object, or {"not_served": "<the error>"} when it has no champion
serve() {
    local dir="$out_dir/$1" result
    result=$(serve_or_why "$out_dir/nba.db" "sqlite:///$dir/mlflow.db" "$dir/score.err" \
        --as-of 2008-03-01 --out "$dir/scores.parquet" --chunk-accounts 4000 "$2") || return
    if [[ $result == *'"not_served":'* ]]; then
        printf '%s\n' "$result"
        return
    fi
    # Doing nothing is what an e-mail's uplift is measured against, never an action.
    if [[ $result == *'"no_action":'* || $result != *'"ranking":"uplift over no_action"'* ]]; then
        printf '%s: served answers do not rank e-mails by uplift over no_action: %s\n' \
            "$1" "$result" >&2
        return 1
    fi
    printf '%s\n' "$result"
}

visits=$(train visits response view)
spend=$(train spend value purchase)
visit_cmp=$(comparison "$visits")
spend_cmp=$(comparison "$spend")
visit_peer=$(field "$visit_cmp" peer_name)
spend_peer=$(field "$spend_cmp" peer_name)
if [[ $visit_peer == "$spend_peer" ]]; then peer=$visit_peer; else
    peer="visits: $visit_peer; spend: $spend_peer"
fi
verdict="visits: $(field "$visit_cmp" verdict); spend: $(field "$spend_cmp" verdict)"
printf '%s,"metrics":{"visit_value_dr":%s,"spend_value_dr":%s},"peer":"%s","verdict":"%s",' \
    "${loaded%\}}" "$visit_cmp" "$spend_cmp" "$peer" "$verdict"
# champion JSON: whether the model became champion (it beat its gate beyond noise)
champion() {
    if [[ $1 == *'"champion": true'* ]]; then printf true; else printf false; fi
}
printf '"train":{"visits":{"seconds":%s,"peak_mb":%s,"champion":%s},' \
    "$(field "$visits" total_s)" "$(field "$visits" peak_mb)" "$(champion "$visits")"
printf '"spend":{"seconds":%s,"peak_mb":%s,"champion":%s}},' \
    "$(field "$spend" total_s)" "$(field "$spend" peak_mb)" "$(champion "$spend")"
served_visits=$(serve visits --store-scores)
# the store keeps one score per account: the first model served writes them
store=--store-scores
if [[ $served_visits == *'"stored":'* ]]; then store=--no-store-scores; fi
served_spend=$(serve spend "$store")
printf '"served":{"visits":%s,"spend":%s},' "$served_visits" "$served_spend"
printf '"seconds":%s}\n' "$SECONDS"
