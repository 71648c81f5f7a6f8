#!/usr/bin/env bash
# Usage: examples/hillstrom/run.sh DATA_DIR OUT_DIR
# DATA_DIR holds hillstrom_email_2008.parquet.
# Validates, builds features (as of the campaign date and two weeks after) and loads into
# OUT_DIR/nba.db; the last line is one JSON object with the results.
set -euo pipefail
# the script's directory, also when run as `bash run.sh` from inside it
case ${BASH_SOURCE[0]} in */*) here=${BASH_SOURCE[0]%/*} ;; *) here=. ;; esac
. "$here/../run_example.sh"
run_example hillstrom "$here/mapping.yaml" "2008-03-01 2008-03-15" "$@"
