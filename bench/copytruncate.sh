#!/bin/sh
# copytruncate.sh RUNS [TAILCAR]: issue 12's copytruncate scenario, repeated.
# Each run: loggen writes 24,000 numbered lines at 3,000 a second, one write
# per line; real logrotate (copytruncate, compress, delaycompress) rotates
# the file every second, 7 times; tailcar (the plain build, bin/tailcar by
# default) follows access.log* to stdout with a 100 ms batch wait. Prints
# the lines missing per run, then the totals. It measures; it never fails.
set -eu
runs=${1:-10}
tailcar=$(realpath "${2:-bin/tailcar}")
loggen=$(realpath bin/loggen)
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cat > "$dir/lr.conf" <<EOF
$dir/access.log {
    rotate 100
    compress
    delaycompress
    missingok
    ifempty
    copytruncate
}
EOF
lossy=0
lost=0
for run in $(seq "$runs"); do
	rm -f "$dir"/access.log* "$dir"/pos* "$dir/state"
	TAILCAR_PATHS="$dir/access.log*" TAILCAR_EXCLUDE='*.gz' TAILCAR_BATCH_WAIT=100ms \
		TAILCAR_DRAIN_DELAY=1s TAILCAR_POSITIONS="$dir/pos" "$tailcar" > "$dir/out" 2> "$dir/err" &
	pid=$!
	sleep 0.5
	"$loggen" --path "$dir/access.log" --total-count 24000 --logs-per-sec 3000 &
	gen=$!
	for i in 1 2 3 4 5 6 7; do sleep 1; logrotate -f -s "$dir/state" "$dir/lr.conf"; done
	wait "$gen"
	sleep 2
	kill -TERM "$pid"
	wait "$pid" || true
	got=$(grep -o 'seq=[0-9]*' "$dir/out" | sort -u | awk -F= '$2 >= 1 && $2 <= 24000' | wc -l)
	missing=$((24000 - got))
	printf '%s ' "$missing"
	lost=$((lost + missing))
	[ "$missing" -eq 0 ] || lossy=$((lossy + 1))
done
echo
echo "runs $runs, runs with lines lost $lossy, lines lost $lost of $((runs * 24000))"
