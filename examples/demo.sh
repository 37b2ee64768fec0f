#!/bin/sh
# make demo: the log generator writes numbered nginx lines into a temp
# dir; tailcar follows them with the Pod's tags set, as the downward API
# would, parses each line as nginx's combined format (fields, and the
# request's own time as @timestamp), and ships enriched records to stdout
# (its own logs go to stderr).
# It ends by itself: loggen touches the exit file when done, and tailcar
# drains and exits 0. Ctrl-C drains and exits too.
set -eu
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
bin/loggen --log-type=nginx --path="$dir/access.log" --total-count="${DEMO_LINES:-20}" \
  --logs-per-sec=10 --done-file="$dir/.done" &
env TAILCAR_PATHS="$dir/*.log" \
  TAILCAR_EXIT_ON="$dir/.done" \
  TAILCAR_DRAIN_DELAY=1s \
  TAILCAR_BATCH_WAIT=200ms \
  TAILCAR_PARSE=nginx \
  TAILCAR_ENV_TAGS='_pod_name_|_pod_ip_|_namespace_|_node_name_|_node_ip_' \
  _pod_name_=web-7d9f _pod_ip_=10.1.2.3 _namespace_=shop _node_name_=node-1 _node_ip_=192.0.2.10 \
  TAILCAR_TAGS=cluster=demo \
  bin/tailcar
wait
