#!/usr/bin/env bash
# Usage: examples/online_retail/run.sh DATA_DIR OUT_DIR
# DATA_DIR holds online_retail_ii_2009_2010.parquet and online_retail_2010_2011.parquet.
# Validates, builds features (as of every half year) and loads into OUT_DIR/nba.db (one JSON
# line), then trains the `repurchase` outcome (outcomes.yaml) and reports it beside its peer:
# the last line is one JSON object with the model's and the peer's figures side by side.
set -euo pipefail
# the script's directory, also when run as `bash run.sh` from inside it
case ${BASH_SOURCE[0]} in */*) here=${BASH_SOURCE[0]%/*} ;; *) here=. ;; esac
. "$here/../run_example.sh"
run_example online_retail "$here/mapping.yaml" "2010-06-01 2010-12-01 2011-06-01 2011-12-01" "$@"
# every first of a month with 90 days of invoices after it (21, from 2010-01-01)
train_example online_retail "$here/mapping.yaml" "$here/outcomes.yaml" repurchase 2011-12-10 "$@" \
    --as-of-dates 24
