#!/bin/sh
# hugeline.sh TAILCAR SINK PARSE MiB: what one huge line leaves behind.
# tailcar (GOMEMLIMIT=57MiB, as in a 64Mi container, and
# TAILCAR_MAX_RECORD_BYTES raised to MiB) reads one JSON line of MiB, then
# a short line every 100 ms for 135 s, which a forced collection (every
# 2 min) falls in; a receiver on 127.0.0.1 answers every POST (and
# Elasticsearch's _bulk). Prints peak and final RSS, CPU ticks (10 ms) over
# the run, the number of collections and the last one's heap sizes (the
# third is the live heap). It measures; it never fails.
set -eu
tailcar=$(realpath "$1")
sink=$2 parse=$3 mib=$4
dir=$(mktemp -d)
recv_pid= pid=
trap 'kill $recv_pid $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
python3 - "$mib" > "$dir/app.log" <<'PY'
import json, sys
pad = 'x' * (int(sys.argv[1]) * 1024 * 1024 - 200)
print(json.dumps({'time': '2026-12-05T06:00:00Z', 'level': 'INFO', 'msg': 'big seq=1', 'pad': pad}))
PY
python3 - "$dir/port" <<'PY' &
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get('Content-Length', 0)))
        body = b'{"took":0,"errors":false}'
        self.send_response(200)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
s = http.server.HTTPServer(('127.0.0.1', 0), H)
open(sys.argv[1], 'w').write(str(s.server_port))
s.serve_forever()
PY
recv_pid=$!
while [ ! -s "$dir/port" ]; do sleep 0.1; done
GODEBUG=gctrace=1 GOMEMLIMIT=57MiB TAILCAR_PATHS="$dir/app.log" TAILCAR_POSITIONS="$dir/pos" \
	TAILCAR_SINK="$sink" TAILCAR_SINK_URL="http://127.0.0.1:$(cat "$dir/port")/" TAILCAR_PARSE="$parse" \
	TAILCAR_MAX_RECORD_BYTES="${mib}MiB" TAILCAR_DRAIN_DELAY=0s "$tailcar" >/dev/null 2>"$dir/err" &
pid=$!
for i in $(seq 1350); do
	echo "{\"time\":\"2026-12-05T06:00:01Z\",\"msg\":\"small seq=$i\"}" >> "$dir/app.log"
	sleep 0.1
done
ticks=$(awk '{print $14+$15}' "/proc/$pid/stat")
peak=$(awk '/VmHWM/{print $2}' "/proc/$pid/status")
rss=$(awk '/VmRSS/{print $2}' "/proc/$pid/status")
kill -TERM $pid; wait $pid || true
echo "$sink $parse ${mib} MiB: peak RSS ${peak} kB, RSS at the end ${rss} kB, ${ticks} CPU ticks;" \
	"$(grep -c '^gc ' "$dir/err") collections, the last $(grep '^gc ' "$dir/err" | tail -1 | grep -o '[0-9]*->[0-9]*->[0-9]* MB')"
