# Sourced by each example's run.sh: validate, build features and load one example's data
# through its mapping alone, then print one JSON line with the three commands' results.
# Only `nba` commands and shell builtins run, so the example shows what a user types.
# NBA is the command to run (default: nba), e.g. NBA="python -m nba" in a checkout.

# run_example NAME MAPPING "AS_OF ..." DATA_DIR OUT_DIR (the last two: run.sh's arguments)
run_example() {
    local name=$1 mapping=$2 dates=$3
    shift 3
    if [[ $# -ne 2 ]]; then
        printf 'usage: %s DATA_DIR OUT_DIR\n' "$0" >&2
        return 2
    fi
    local data_dir=$1 out_dir=$2
    local as_of=() date validate features load
    for date in $dates; do as_of+=(--as-of "$date"); done
    # On a problem nba prints the report (validate) or the error (stderr) and exits non-zero;
    # the script then stops with that exit code.
    validate=$(${NBA:-nba} validate "$data_dir" --mapping "$mapping" --json) || {
        local code=$?
        # the report (exit 1); an error such as a broken mapping printed nothing here
        if [[ -n $validate ]]; then printf '%s\n' "$validate"; fi
        return "$code"
    }
    features=$(${NBA:-nba} features --data "$data_dir" --mapping "$mapping" "${as_of[@]}" \
        --out "$out_dir/features.parquet" --json) || return
    # A store of the example's own (SQLite in OUT_DIR), whatever NBA_DATABASE_URL says.
    load=$(NBA_DATABASE_URL="sqlite:///$out_dir/nba.db" ${NBA:-nba} load "$data_dir" \
        --mapping "$mapping" --json) || return
    printf '{"example":"%s","validate":%s,"features":%s,"load":%s}\n' \
        "$name" "$validate" "$features" "$load"
}

# train_example NAME MAPPING OUTCOMES OUTCOME AS_OF DATA_DIR OUT_DIR [nba train option ...]
# Trains the example's declared outcomes (MLflow store OUT_DIR/mlflow.db), reports OUTCOME and
# serves what was trained: `nba score` as of AS_OF (the data's end) on the example's store,
# OUT_DIR/nba.db, into OUT_DIR/scores.parquet. Prints one JSON line: the example, the
# training's models, seconds and peak memory, the outcome's test figures beside its peer with
# 95 % intervals (`nba report --outcome OUTCOME --json`), and under "served" what
# `nba score --json` said, or {"not_served": why} when no model has a champion (every one
# lost its gate).
train_example() {
    local name=$1 mapping=$2 outcomes=$3 outcome=$4 as_of=$5 data_dir=$6 out_dir=$7
    shift 7
    # absolute paths: training runs inside OUT_DIR, where MLflow keeps the runs' artifacts
    data_dir=$(cd "$data_dir" && pwd) out_dir=$(cd "$out_dir" && pwd)
    mapping="$(cd "${mapping%/*}" && pwd)/${mapping##*/}"
    outcomes="$(cd "${outcomes%/*}" && pwd)/${outcomes##*/}"
    local uri="sqlite:///$out_dir/mlflow.db" trained report served
    trained=$(cd "$out_dir" && ${NBA:-nba} train outcomes --data "$data_dir" \
        --mapping "$mapping" --outcomes "$outcomes" --tracking-uri "$uri" --json "$@") || return
    trained=${trained##*$'\n'}  # the last line: the JSON summary
    report=$(${NBA:-nba} report --outcome "$outcome" --tracking-uri "$uri" --json) || return
    served=$(serve_or_why "$out_dir/nba.db" "$uri" "$out_dir/score.err" --as-of "$as_of" \
        --out "$out_dir/scores.parquet") || return
    report=${report%\}}
    printf '{"example":"%s","train":%s,%s,"served":%s}\n' "$name" "$trained" "${report#\{}" \
        "$served"
}

# serve_or_why STORE TRACKING_URI LOG [nba score option ...]: `nba score --json` on the SQLite
# store STORE with the champions at TRACKING_URI; prints its JSON line, or
# {"not_served": "<why>"} when no model has a champion (every one lost its gate). Any other
# failure prints LOG (nba score's messages) and fails.
serve_or_why() {
    local store=$1 uri=$2 log=$3 result why
    shift 3
    if result=$(NBA_DATABASE_URL="sqlite:///$store" MLFLOW_TRACKING_URI="$uri" \
        ${NBA:-nba} score --json "$@" 2>"$log"); then
        printf '%s\n' "${result##*$'\n'}"
        return
    fi
    why=$(tail -n 1 "$log")
    if [[ $why != *"has the alias"* ]]; then
        cat "$log" >&2
        return 1
    fi
    why=${why//\\/\\\\}
    printf '{"not_served":"%s"}\n' "${why//\"/\\\"}"
}
