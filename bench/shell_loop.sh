#!/bin/bash
# The naive shell sidecar the collector replaces: run the script, turn key=value into `edge_key value`
# with sed, write a temp file and rename it. Used as a CPU baseline by collector_bench.py.
# usage: shell_loop.sh ITERATIONS INTERVAL_SECONDS SCRIPT OUTPUT
set -euo pipefail
iterations=$1 interval=$2 script=$3 output=$4
sed_program='s/^\([a-zA-Z_][a-zA-Z0-9_]*\)=/edge_\1 /'

# Pace with the `read -t` builtin on a FIFO we hold open for reading and writing (it never gets data, so
# read times out): an external `sleep` would add a fork+exec per iteration to the figure.
fifo=$(mktemp -u "${output}.fifo.XXXXXX")
mkfifo "$fifo"
exec 3<>"$fifo"
rm -f "$fifo"

for ((i = 0; i < iterations; i++)); do
    bash "$script" | sed -e "$sed_program" > "$output.tmp" && mv "$output.tmp" "$output"
    read -r -t "$interval" -u 3 _ || true
done
