#!/bin/sh
# copytruncate.sh RUNS [TAILCAR]: issue 12's copytruncate scenario, repeated.
# Each run: loggen writes 24,000 numbered lines at 3,000 a second, one write
# per line, and notes when it wrote each (--times); real logrotate
# (copytruncate, compress, delaycompress) rotates the file every second, 7
# times; tailcar (the plain build, bin/tailcar by default) follows access.log* to stdout with a 100 ms batch wait (WAIT=1s:
# tailcar's default). Prints the lines missing per run, each lost line with
# how long after the last line received before it, and how long before the
# first line written after the truncation, it was written (how long it can
# have been on disk), then the totals, lines repeated included. It measures;
# it never fails.
# WRITER=nginx: the lines are a real nginx's access log instead, for 24,000
# numbered requests at 3,000 a second (bench/nginxload; nginx from apt).
# READER=eager: bench/eager follows access.log in tailcar's place, reading
# at each change event from a thread of its own: the reference reader.
# FOLLOW=original: tailcar follows access.log alone, not its copies, as
# the pattern *.log would: what the truncation comes before is lost
# unless a rescue kept it.
# SHARES=READER:APP (root, cgroup v1's cpu controller): the reader runs in
# a cgroup of its own with cpu.shares READER, and the writer, nginx and
# logrotate in another with APP, as the kubelet runs two containers of a
# Pod (shares = the CPU request in millicores × 1024 / 1000: 5m is 5,
# 100m is 102). Without it, all share the script's cgroup.
# KEEP=DIR: the reader's log and output of each run that lost or repeated
# lines are kept in DIR, to trace them.
set -eu
runs=${1:-10}
tailcar=$(realpath "${2:-bin/tailcar}")
writer=${WRITER:-loggen}
reader=${READER:-tailcar}
loggen=$(realpath bin/loggen)
dir=$(mktemp -d)
nginx_pid=
cpu=/sys/fs/cgroup/cpu # cgroup v1's cpu controller, for SHARES
cg=
# The cgroups go once nginx has quit (best effort: rmdir fails while a
# process is left in one).
trap '[ -z "$nginx_pid" ] || kill -QUIT "$nginx_pid" 2>/dev/null || true; rm -rf "$dir"; [ -z "$cg" ] || { echo $$ > "$cpu/cgroup.procs"; sleep 0.5; rmdir "$cg/reader" "$cg/app" "$cg"; } 2>/dev/null || true' EXIT
# in-reader starts the reader, in its cgroup when SHARES is set.
if [ -n "${SHARES:-}" ]; then
	[ -w "$cpu/cgroup.procs" ] || { echo "copytruncate.sh: SHARES needs root and cgroup v1's cpu controller at $cpu" >&2; exit 2; }
	cg=$cpu/tailcar-bench-$$
	mkdir -p "$cg/reader" "$cg/app"
	echo "${SHARES%%:*}" > "$cg/reader/cpu.shares"
	echo "${SHARES##*:}" > "$cg/app/cpu.shares"
	echo $$ > "$cg/app/cgroup.procs" # the script, and all it starts but the reader
	printf 'echo $$ > %s/reader/cgroup.procs && exec "$@"\n' "$cg" > "$dir/in-reader"
else
	printf 'exec "$@"\n' > "$dir/in-reader"
fi
[ "$reader" != eager ] || go build -o "$dir/eager" ./bench/eager
if [ "$writer" = nginx ]; then
	go build -o "$dir/nginxload" ./bench/nginxload
	port=$((20000 + $$ % 20000))
	mkdir -p "$dir/nginx"
	sed -e "s|@DIR@|$dir/nginx|g" -e "s|@ACCESS_LOG@|$dir/access.log|" -e "s|@LISTEN@|127.0.0.1:$port|" bench/nginx.conf > "$dir/nginx/nginx.conf"
	/usr/sbin/nginx -p "$dir/nginx" -e "$dir/nginx/error.log" -c "$dir/nginx/nginx.conf" &
	nginx_pid=$!
	for _ in $(seq 50); do [ -s "$dir/nginx/nginx.pid" ] && break; sleep 0.1; done
fi
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
dups=0
for run in $(seq "$runs"); do
	rm -f "$dir"/access.log* "$dir"/pos* "$dir/state"
	# nginx keeps its log open: it makes a new one on USR1.
	[ -z "$nginx_pid" ] || { kill -USR1 "$nginx_pid"; while [ ! -e "$dir/access.log" ]; do sleep 0.05; done; }
	if [ "$reader" = eager ]; then
		touch "$dir/access.log"
		sh "$dir/in-reader" "$dir/eager" -file "$dir/access.log" > "$dir/out" 2> "$dir/err" &
	else
		TAILCAR_PATHS="$dir/access.log$([ "${FOLLOW:-}" = original ] || echo '*')" TAILCAR_EXCLUDE='*.gz' TAILCAR_BATCH_WAIT="${WAIT:-100ms}" \
			TAILCAR_DRAIN_DELAY=1s TAILCAR_POSITIONS="$dir/pos" sh "$dir/in-reader" "$tailcar" > "$dir/out" 2> "$dir/err" &
	fi
	pid=$!
	sleep 0.5
	if [ "$writer" = nginx ]; then
		"$dir/nginxload" -url "http://127.0.0.1:$port" -n 24000 -rate 3000 &
	else
		"$loggen" --path "$dir/access.log" --total-count 24000 --logs-per-sec 3000 --times "$dir/times" &
	fi
	gen=$!
	for i in 1 2 3 4 5 6 7; do
		sleep 1
		logrotate -f -s "$dir/state" "$dir/lr.conf"
	done
	wait "$gen"
	sleep 2
	kill -TERM "$pid"
	wait "$pid" || true
	grep -o 'seq=[0-9]*' "$dir/out" | cut -d= -f2 | awk '$1 >= 1 && $1 <= 24000' | sort -n > "$dir/all"
	uniq "$dir/all" > "$dir/got"
	missing=$((24000 - $(wc -l < "$dir/got")))
	repeated=$(($(wc -l < "$dir/all") - $(wc -l < "$dir/got")))
	printf '%s ' "$missing"
	if [ "$writer" = loggen ] && [ "$missing" -gt 0 ]; then
		# The lines received, then every line written in order: lost lines
		# wait for the next line received, or for the first line written
		# after a truncation.
		awk 'NR == FNR { got[$1] = 1; next }
			$3 == 1 { for (i = 1; i <= n; i++) printf "\n  seq %d: written %d µs after the last line received before it, %d µs before seq %d, the first line after a truncation", lost[i], at[i] - kept, $2 - at[i], $1; n = 0 }
			!($1 in got) { lost[++n] = $1; at[n] = $2; next }
			{ for (i = 1; i <= n; i++) printf "\n  seq %d lost, and seq %d after it received: not a truncation", lost[i], $1; n = 0; kept = $2 }
			END { for (i = 1; i <= n; i++) printf "\n  seq %d lost, no truncation after it", lost[i] }' "$dir/got" "$dir/times" >&2
		echo >&2
	fi
	if [ -n "${KEEP:-}" ] && [ $((missing + repeated)) -gt 0 ]; then
		mkdir -p "$KEEP"
		for f in err out; do cp "$dir/$f" "$KEEP/$$-$run.$f"; done
		echo "kept in $KEEP/$$-$run.*" >&2
	fi
	lost=$((lost + missing))
	dups=$((dups + repeated))
	[ "$missing" -eq 0 ] || lossy=$((lossy + 1))
done
echo
echo "runs $runs, runs with lines lost $lossy, lines lost $lost of $((runs * 24000)), lines repeated $dups"
