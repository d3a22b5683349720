#!/usr/bin/env bash
# Measures charla as a cluster on this machine: one node alone (SQLite, no bus), then one, two
# and three nodes sharing a private PostgreSQL and a private nats-server, every node its own
# process on its own loopback port, `charla bench` spreading its clients over the nodes
# (connection N to node N mod count). Writes the table into the generated section of
# docs/CLUSTER.md.
#
#   bench/cluster.sh                             # fanout, crowd, latency, idle (~4 minutes)
#   SCENARIOS="fanout" NODES="1 3" bench/cluster.sh
#
# Knobs (environment): SCENARIOS, NODES (the cluster sizes; 0 is the node alone), TIMEOUT (90 s
# per run), OUT (docs/CLUSTER.md), PORT_BASE (16900). Installs Debian's postgresql and
# nats-server when missing; builds charla with `cargo build --release`. Loopback only; every
# process it starts is stopped when it ends.
set -euo pipefail
cd "$(dirname "$0")/.."

SCENARIOS=${SCENARIOS:-"fanout crowd latency idle"}
NODES=${NODES:-"0 1 2 3"}
TIMEOUT=${TIMEOUT:-90}
OUT=${OUT:-docs/CLUSTER.md}
PORT_BASE=${PORT_BASE:-16900}
PATH=$PATH:/usr/sbin:/sbin
ulimit -n 65536 2>/dev/null || true

apt_updated=
need_apt() { # need_apt TEST PACKAGE: install PACKAGE unless the shell test TEST holds
    eval "$1" && return
    echo "cluster.sh: installing $2" >&2
    if [[ -z $apt_updated ]]; then apt-get update -qq; apt_updated=1; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
}
need_apt 'compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null' postgresql
need_apt 'command -v nats-server >/dev/null' nats-server
need_apt 'command -v python3 >/dev/null' python3
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)

cargo build --release --quiet
CHARLA=$PWD/target/release/charla

# PostgreSQL refuses to run as root: its directory belongs to the postgres user.
work=$(mktemp -d /tmp/charla-cluster.XXXXXX)
chmod 755 "$work"
as_pg() { if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
node_pids=()
nats_pid=
pg_port=$((PORT_BASE + 1))
nats_port=$((PORT_BASE + 2))
stop_nodes() {
    for pid in "${node_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${node_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    node_pids=()
}
cleanup() {
    stop_nodes
    [[ -n $nats_pid ]] && { kill -TERM "$nats_pid" 2>/dev/null || true; wait "$nats_pid" 2>/dev/null || true; }
    [[ -d $work/pg ]] && as_pg "$PG_BIN/pg_ctl" -D "$work/pg/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/pg"
[[ $(id -u) == 0 ]] && chown postgres: "$work/pg"
as_pg "$PG_BIN/initdb" -D "$work/pg/data" -U charla --auth=trust -E UTF8 >/dev/null
as_pg "$PG_BIN/pg_ctl" -D "$work/pg/data" -l "$work/pg/log" -w \
    -o "-p $pg_port -k $work/pg -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null

nats-server -js -a 127.0.0.1 -p "$nats_port" -sd "$work/nats" >"$work/nats.log" 2>&1 &
nats_pid=$!

cpu_ticks() { # cpu_ticks PID: user + system time in clock ticks
    awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}

wait_port() { # wait_port PORT PID LOG
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        kill -0 "$2" 2>/dev/null || break
        sleep 0.1
    done
    echo "cluster.sh: nothing listens on port $1; the log:" >&2
    cat "$3" >&2
    exit 1
}

port=$((PORT_BASE + 10))
db=0
results="$work/results.jsonl"
: >"$results"
for scenario in $SCENARIOS; do
    for nodes in $NODES; do
        count=$((nodes == 0 ? 1 : nodes))
        cluster=()
        if [[ $nodes != 0 ]]; then
            db=$((db + 1))
            as_pg "$PG_BIN/createdb" -h 127.0.0.1 -p "$pg_port" -U charla "bench$db"
            cluster=(--store "postgres://charla@127.0.0.1:$pg_port/bench$db" --bus "nats://127.0.0.1:$nats_port")
        fi
        targets=()
        for n in $(seq "$count"); do
            port=$((port + 1))
            dir="$work/node-$scenario-$nodes-$n"
            mkdir -p "$dir"
            "$CHARLA" serve --listen "127.0.0.1:$port" --flood-limit off --max-conns-per-ip 0 --max-conns 0 \
                --sendq 100000 --data-dir "$dir" "${cluster[@]}" >"$dir/log" 2>&1 &
            node_pids+=($!)
            wait_port "$port" "$!" "$dir/log"
            targets+=("127.0.0.1:$port")
        done
        pids=$(IFS=,; echo "${node_pids[*]}")
        list=$(IFS=,; echo "${targets[*]}")
        nats_before=$(cpu_ticks "$nats_pid")
        echo "cluster.sh: $scenario on $count node(s)$([[ $nodes == 0 ]] && echo ' alone')…" >&2
        out="$work/$scenario-$nodes.out"
        # idle: every node holds every user (its own, and the others' as remote users), so the
        # memory summed over the nodes and divided by the connections shows what that costs.
        if "$CHARLA" bench "$scenario" --target "$list" --server-pid "$pids" --timeout "$TIMEOUT" \
            $([[ $scenario == idle ]] && echo --channel '#idle') >"$out" 2>"$out.err"; then
            cat "$out" >&2
            nats_cpu=$(( $(cpu_ticks "$nats_pid") - nats_before ))
            tail -n 1 "$out" | python3 -c '
import json, os, sys
r = json.load(sys.stdin)
r["nodes"] = int(sys.argv[1]); r["nats_cpu_secs"] = int(sys.argv[2]) / os.sysconf("SC_CLK_TCK")
print(json.dumps(r))' "$nodes" "$nats_cpu" >>"$results"
        else
            echo "cluster.sh: $scenario on $count node(s) failed: $(tail -n 3 "$out.err")" >&2
        fi
        stop_nodes
    done
done

python3 - "$results" "$OUT" "$(nproc)" "$(git rev-parse --short HEAD)" <<'PY'
"""Turns the bench's JSON lines into the generated section of docs/CLUSTER.md."""
import datetime, json, os, sys

results, out, cores, commit = sys.argv[1:5]
rows = [json.loads(line) for line in open(results) if line.strip()]
BEGIN, END = "<!-- BEGIN GENERATED by bench/cluster.sh -->", "<!-- END GENERATED -->"

def setup(r):
    return "1 node alone (SQLite, no bus)" if r["nodes"] == 0 else f"{r['nodes']} node{'s' if r['nodes'] > 1 else ''} (PostgreSQL + NATS)"

def us(x):
    return "—" if x is None else (f"{x / 1000:,.2f} ms" if x >= 1000 else f"{x} µs")

def rss(r):
    b = r.get("rss_per_conn_bytes")
    return "—" if b is None else f"{b:,} B ({r.get('registered', 0):,} conns, all in one room)"

def per_message(r):
    """CPU seconds of the nodes and of nats-server per message sent, in µs."""
    return (r.get("server_cpu_secs") or 0) * 1e6 / r["sent"], r["nats_cpu_secs"] * 1e6 / r["sent"]

def cpu(r):
    nodes, nats = per_message(r)
    return f"{nodes:,.1f} µs" if not r["nodes"] else f"{nodes:,.1f} + {nats:,.1f} µs"

def extra(r, alone):
    if not r["nodes"] or alone is None:
        return "—"
    return f"{sum(per_message(r)) - sum(per_message(alone)):+,.1f} µs"

lines = [
    "| scenario | setup | deliveries/s | lost | p99 listeners | p99 senders | generator lag p99 | "
    "CPU per message sent (nodes + nats-server) | against the node alone |",
    "|---|---|---|---|---|---|---|---|---|",
]
idle = [r for r in rows if r["scenario"] == "idle"]
rows = [r for r in rows if r["scenario"] != "idle"]
alone = {r["scenario"]: r for r in rows if r["nodes"] == 0}
for r in rows:
    lines.append(
        f"| {r['scenario']} | {setup(r)} | {r.get('deliveries_per_sec', 0):,.0f} | {r.get('lost', 0):,} of {r.get('expected', 0):,} | "
        f"{us(r.get('p99_listeners_us'))} | {us(r.get('p99_senders_us'))} | {us(r.get('p99_generator_lag_us'))} | "
        f"{cpu(r)} | {extra(r, alone.get(r['scenario']))} |"
    )
section = [
    BEGIN, "",
    f"Generated by `bench/cluster.sh` on {datetime.date.today()} at {commit}: {cores} cores; the nodes, "
    "nats-server, PostgreSQL and the load generator all share them.", "",
    *lines, "",
]
if idle:
    section += [
        "Idle connections (memory of all the nodes together, per connection):", "",
        "| setup | RSS per connection |", "|---|---|",
        *[f"| {setup(r)} | {rss(r)} |" for r in idle], "",
    ]
section += [END]
text = open(out).read()
if BEGIN in text and END in text:
    before, rest = text.split(BEGIN, 1)
    text = before + "\n".join(section) + rest.split(END, 1)[1]
else:
    text = text.rstrip() + "\n\n" + "\n".join(section) + "\n"
open(out, "w").write(text)
PY
echo "cluster.sh: wrote $OUT" >&2
