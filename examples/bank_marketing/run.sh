#!/usr/bin/env bash
# Usage: examples/bank_marketing/run.sh DATA_DIR OUT_DIR
# DATA_DIR holds bank_marketing_additional_full.parquet.
# Validates, builds features (as of the start of 2009 and 2010 and of December 2010) and
# loads into OUT_DIR/nba.db (one JSON line), then trains the `subscription` outcome
# (outcomes.yaml) and reports it beside its peer: the last line is one JSON object with the
# model's and the peer's figures side by side.
set -euo pipefail
# the script's directory, also when run as `bash run.sh` from inside it
case ${BASH_SOURCE[0]} in */*) here=${BASH_SOURCE[0]%/*} ;; *) here=. ;; esac
. "$here/../run_example.sh"
run_example bank_marketing "$here/mapping.yaml" "2009-01-01 2010-01-01 2010-12-01" "$@"
train_example bank_marketing "$here/mapping.yaml" "$here/outcomes.yaml" subscription 2010-12-01 "$@"
