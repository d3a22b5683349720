#!/usr/bin/env bash
# Compares charla with ngIRCd and InspIRCd under `charla bench`, each server fresh per scenario,
# everything on loopback, and writes the figures into the generated section of
# docs/BENCHMARKS.md.
#
#   bench/compare.sh                                  # every scenario, every server (~7 minutes)
#   SCENARIOS="fanout crowd" bench/compare.sh         # a selection
#   SERVERS="ngircd inspircd" bench/compare.sh        # leave a server out
#
# Knobs (environment): SCENARIOS, SERVERS, CHARLA_PROTO (auto|irc|plain; auto uses IRC when
# charla answers an IRC registration, else plain text), IDLE_CLIENTS (10000, over either
# protocol; plain-text clients all land in #lobby, whose joins are quiet above 200 members),
# CHURN_SECS (10), RUNS ("fanout=5 crowd=3": how many runs of a scenario each server gets,
# on a fresh server each time, the servers taking turns; the table and the chart show each
# server's best run, among those that lost nothing if any did, and a list below the table
# every run's figure), TIMEOUT (90 s per run), QUIET_PCT (5: how much of the CPU, in %, may be
# busy in the second before a run starts) and QUIET_WAIT (60 s: the longest wait for that), OUT
# (docs/BENCHMARKS.md), DATA (docs/benchmarks.tsv: the figures the chart shows), CHART
# (docs/benchmarks.svg), PORT_BASE (16700).
#
# Writes the table into OUT's generated section, the chart's figures into DATA, and the chart
# (one panel per scenario, a bar per server) into CHART, drawn by gnuplot.
#
# Installs Debian's ngircd, inspircd and gnuplot when missing; builds charla with
# `cargo build --release`.
# Not part of the test suite: it takes minutes and needs the two servers.
set -euo pipefail
cd "$(dirname "$0")/.."

SCENARIOS=${SCENARIOS:-"fanout crowd latency idle churn"}
SERVERS=${SERVERS:-"ngircd inspircd charla"}
CHARLA_PROTO=${CHARLA_PROTO:-auto}
IDLE_CLIENTS=${IDLE_CLIENTS:-10000}
CHURN_SECS=${CHURN_SECS:-10}
RUNS=${RUNS:-"fanout=5 crowd=3"}
TIMEOUT=${TIMEOUT:-90}
OUT=${OUT:-docs/BENCHMARKS.md}
DATA=${DATA:-docs/benchmarks.tsv}
CHART=${CHART:-docs/benchmarks.svg}
PORT_BASE=${PORT_BASE:-16700}

# Every connection is a file descriptor, in the bench and in the server alike.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
ulimit -n 1048576 2>/dev/null || true
echo "compare.sh: open-file limit $(ulimit -n)" >&2

apt_updated=
need_apt() { # need_apt COMMAND PACKAGE
    command -v "$1" >/dev/null 2>&1 && return
    echo "compare.sh: installing $2" >&2
    if [[ -z $apt_updated ]]; then apt-get update -qq; apt_updated=1; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
}
PATH=$PATH:/usr/sbin:/sbin
for server in $SERVERS; do
    case $server in
        ngircd) need_apt ngircd ngircd ;;
        inspircd) need_apt inspircd inspircd ;;
        charla) ;;
        *) echo "compare.sh: unknown server '$server' (ngircd, inspircd, charla)" >&2; exit 2 ;;
    esac
done
need_apt python3 python3
need_apt gnuplot gnuplot-nox
# Debian starts the packaged daemons on install; they are not ours, and they hold port 6667.
for unit in ngircd inspircd; do
    systemctl stop "$unit" >/dev/null 2>&1 || service "$unit" stop >/dev/null 2>&1 || true
done

cargo build --release --quiet
CHARLA=$PWD/target/release/charla

work=$(mktemp -d "${TMPDIR:-/tmp}/charla-compare.XXXXXX")
server_pid=
stop_server() {
    [[ -n $server_pid ]] || return 0
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=
}
trap 'stop_server; rm -rf "$work"' EXIT
: >"$work/servers"
: >"$work/benches"

# ngIRCd: MaxConnections = 0 is "no limit" and lets the connection pool grow as needed; a large
# number instead makes ngIRCd allocate and scan a pool that large on every loop (10× slower).
# MaxPenaltyTime = 0 turns command penalties off; DNS, Ident and PAM off keep it local and quick.
ngircd_conf() { # DIR PORT
    cat >"$1/ngircd.conf" <<EOF
[Global]
    Name = bench.ngircd.invalid
    Info = charla bench peer
    Listen = 127.0.0.1
    Ports = $2
    MotdPhrase = bench
[Limits]
    MaxConnections = 0
    MaxConnectionsIP = 0
    MaxJoins = 0
    MaxPenaltyTime = 0
    PingTimeout = 600
    PongTimeout = 120
[Options]
    DNS = no
    Ident = no
    PAM = no
EOF
}

# InspIRCd 3: fakelag off and threshold/commandrate far above any bench's rate, big queues, no
# per-IP limits. netbuffersize must stay below 65535 (a larger value is ignored: 10 KiB reads).
# Even so InspIRCd often stops reading a flooding sender after a burst and goes on at its next
# 1 s tick (see docs/BENCHMARKS.md); no connect-block setting tried avoids that. <dns> points at
# loopback so that nothing leaves the machine (lookups are off anyway).
inspircd_conf() { # DIR PORT
    cat >"$1/inspircd.conf" <<EOF
<server name="bench.inspircd.invalid" description="charla bench peer" network="bench">
<admin name="bench" nick="bench" email="bench@bench.invalid">
<bind address="127.0.0.1" port="$2" type="clients">
<connect name="bench" allow="127.0.0.0/8" timeout="60" pingfreq="10m"
         hardsendq="64M" softsendq="1M" recvq="16M"
         threshold="1000000" commandrate="1000000000" fakelag="no"
         localmax="200000" globalmax="200000" limit="200000" maxchans="100"
         resolvehostnames="no" useident="no">
<performance somaxconn="4096" netbuffersize="65534" clonesonconnect="no">
<channels users="100" opers="100">
<dns server="127.0.0.1" timeout="1">
<pid file="$1/inspircd.pid">
EOF
}

# start_server NAME PROTO PORT: starts a fresh server, sets server_pid, waits until it listens.
start_server() {
    local name=$1 port=$3 dir="$work/$1-$3" cmd
    mkdir -p "$dir"
    case $name in
        ngircd) ngircd_conf "$dir" "$port"; cmd=(ngircd --nodaemon --config "$dir/ngircd.conf") ;;
        inspircd) inspircd_conf "$dir" "$port"; cmd=(inspircd --runasroot --nofork --config "$dir/inspircd.conf") ;;
        charla) cmd=("$CHARLA" serve --listen "127.0.0.1:$port" --flood-limit off --max-conns-per-ip 0
                     --max-conns 0 --sendq 100000 --data-dir "$dir/data") ;;
    esac
    if [[ -f $dir/$name.conf ]]; then
        sed "s|$dir|\$TMP|g; s|$port|PORT|g; s/^/    /" "$dir/$name.conf" >"$work/$name.conf.shown"
    fi
    echo "${pin_server[*]}${pin_server:+ }${cmd[*]}" | sed "s|$dir|\$TMP|g; s|$PWD/||g; s|127.0.0.1:$port|127.0.0.1:PORT|g" >>"$work/servers"
    "${pin_server[@]}" "${cmd[@]}" >"$dir/server.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "compare.sh: $name did not start on port $port; its log:" >&2
    cat "$dir/server.log" >&2
    exit 1
}

port=$PORT_BASE
next_port() { port=$((port + 1)); }

# busy_pct: how much of the machine's CPU was busy over the next second, in percent.
busy_pct() {
    local a b
    read -r -a a < <(head -n 1 /proc/stat)
    sleep 1
    read -r -a b < <(head -n 1 /proc/stat)
    local total=0 i
    for i in 1 2 3 4 5 6 7 8; do total=$((total + b[i] - a[i])); done
    local idle=$((b[4] - a[4] + b[5] - a[5]))
    echo $(( total > 0 ? 100 * (total - idle) / total : 0 ))
}

# wait_quiet: waits (up to QUIET_WAIT seconds) until at most QUIET_PCT % of the CPU is busy
# over a second, so that no run starts while the last one's server is still winding down or
# something else runs. Every bench run's figure is its server's and the generator's only if the
# machine is otherwise idle; the busiest second any run started after is reported.
QUIET_PCT=${QUIET_PCT:-5}
QUIET_WAIT=${QUIET_WAIT:-60}
busiest_start=0
wait_quiet() {
    local busy waited=0
    while busy=$(busy_pct); ((busy > QUIET_PCT && waited < QUIET_WAIT)); do
        waited=$((waited + 1))
    done
    ((busy > busiest_start)) && busiest_start=$busy
    if ((busy > QUIET_PCT)); then
        echo "compare.sh: the machine is still ${busy}% busy after ${QUIET_WAIT}s; running anyway" >&2
    fi
}
pin_server=() pin_bench=()

if [[ " $SERVERS " == *" charla "* && $CHARLA_PROTO == auto ]]; then
    next_port
    start_server charla irc "$port"
    if "$CHARLA" bench churn --target "127.0.0.1:$port" --proto irc --workers 1 --duration 1 \
        --timeout 5 >/dev/null 2>&1; then
        CHARLA_PROTO=irc
    else
        CHARLA_PROTO=plain
        proto_note=" (it did not answer an IRC registration, so its plain-text protocol was used; plain lines are ~20 bytes shorter than IRC ones)"
    fi
    stop_server
    echo "compare.sh: charla is benchmarked over $CHARLA_PROTO" >&2
fi

results="$work/results.jsonl"
: >"$results"
for scenario in $SCENARIOS; do
    # Latency is the server's only if neither waits for the other's core: for it the server
    # runs on core 0 and the generator on core 1 (every server alike), and the generator
    # reports its own scheduling lag beside the result.
    pin_server=() pin_bench=()
    if [[ $scenario == latency && $(nproc) -ge 2 ]] && command -v taskset >/dev/null; then
        pin_server=(taskset -c 0) pin_bench=(taskset -c 1)
    fi
    runs=1
    for setting in $RUNS; do
        [[ ${setting%%=*} == "$scenario" ]] && runs=${setting#*=}
    done
    for run in $(seq "$runs"); do
        for server in $SERVERS; do
            proto=irc
            [[ $server == charla ]] && proto=$CHARLA_PROTO
            next_port
            start_server "$server" "$proto" "$port"
            args=(bench "$scenario" --target "127.0.0.1:$port" --proto "$proto" --server-pid "$server_pid"
                  --timeout "$TIMEOUT")
            case $scenario in
                idle) args+=(--clients "$IDLE_CLIENTS") ;;
                churn) args+=(--duration "$CHURN_SECS") ;;
            esac
            echo "${pin_bench[*]}${pin_bench:+ }charla ${args[*]}" | sed "s/--server-pid [0-9]*/--server-pid PID/; s/127.0.0.1:$port/127.0.0.1:PORT/" >>"$work/benches"
            wait_quiet
            echo "compare.sh: $scenario against $server ($proto), run $run of $runs…" >&2
            out="$work/$scenario-$server-$run.out"
            err="$work/$scenario-$server-$run.err"
            if "${pin_bench[@]}" "$CHARLA" "${args[@]}" >"$out" 2>"$err"; then
                cat "$out" >&2
                tail -n 1 "$out" | python3 -c 'import json,sys; r=json.load(sys.stdin); r["server"]=sys.argv[1]; print(json.dumps(r))' "$server" >>"$results"
            else
                echo "compare.sh: $scenario against $server failed: $(tail -n 3 "$err")" >&2
                python3 -c 'import json,sys; print(json.dumps({"scenario":sys.argv[1],"server":sys.argv[2],"proto":sys.argv[3],"failed":sys.argv[4]}))' \
                    "$scenario" "$server" "$proto" "$(tail -n 1 "$err")" >>"$results"
            fi
            stop_server
        done
    done
done

versions() {
    for server in $SERVERS; do
        case $server in
            ngircd) echo "- ngIRCd: $(ngircd --version 2>/dev/null | head -n 1) (Debian $(dpkg-query -W -f '${Version}' ngircd 2>/dev/null))" ;;
            inspircd) echo "- InspIRCd: $(inspircd --version 2>/dev/null | head -n 1) (Debian $(dpkg-query -W -f '${Version}' inspircd 2>/dev/null))" ;;
            charla) echo "- charla: $("$CHARLA" --version) at $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src Cargo.toml || echo '+changes'), over $CHARLA_PROTO${proto_note:-}" ;;
        esac
    done
}

{
    echo "Generated by \`bench/compare.sh\` on $(date -u +%Y-%m-%d) (SCENARIOS=\"$SCENARIOS\")."
    echo
    echo "Machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1),"
    echo "$(free -g | awk '/^Mem:/ {print $2}') GiB memory, Linux $(uname -r). Load generator and server share it."
    echo "Each run began on a quiet machine: at most ${busiest_start}% of its CPU busy in the second before."
    echo
    versions
    echo
} >"$work/header.md"

{
    echo "Server configurations (\$TMP is a fresh temporary directory per run, PORT a fresh port):"
    echo
    for server in ngircd inspircd; do
        if [[ -f $work/$server.conf.shown ]]; then
            echo "$server:"
            echo
            cat "$work/$server.conf.shown"
            echo
        fi
    done
    echo "Servers, each started fresh for every bench run and stopped after it:"
    echo
    awk '!seen[$0]++' "$work/servers" | sed 's/^/    /'
    echo
    echo "Bench runs (PID: the server's process id):"
    echo
    awk '!seen[$0]++' "$work/benches" | sed 's/^/    /'
} >"$work/footer.md"

python3 - "$results" "$work/header.md" "$work/footer.md" "$OUT" "$DATA" "$work/chart.gp" "$CHART" <<'PY'
"""Turns the bench's JSON lines into the generated section of docs/BENCHMARKS.md, the chart's
figures (DATA) and the gnuplot script that draws them."""
import json, os, sys

results, header, footer, out, data, script, chart = sys.argv[1:8]
runs = [json.loads(line) for line in open(results) if line.strip()]
BEGIN, END = "<!-- BEGIN GENERATED by bench/compare.sh -->", "<!-- END GENERATED -->"

# The figure each scenario is judged by, and whether more is better.
PRIMARY = {
    "fanout": ("deliveries_per_sec", True, "deliveries/s"),
    "crowd": ("deliveries_per_sec", True, "deliveries/s"),
    "latency": ("p99_listeners_us", False, "p99 listeners"),
    "idle": ("rss_per_conn_bytes", False, "RSS/conn"),
    "churn": ("cycles_per_sec", True, "cycles/s"),
}

def best(group):
    """A server's best run of a scenario by its primary figure, among the runs that lost
    nothing if any did; a failure only if all failed."""
    key, higher, _ = PRIMARY[group[0]["scenario"]]
    done = [r for r in group if "failed" not in r and r.get(key) is not None]
    if not done:
        return group[-1]
    whole = [r for r in done if not r.get("lost")] or done
    return max(whole, key=lambda r: r[key] if higher else -r[key])

# One row per scenario and server: its best run.
groups = {}
for r in runs:
    groups.setdefault((r["scenario"], r["server"]), []).append(r)
rows = [best(group) for group in groups.values()]

def num(x, digits=0):
    return "—" if x is None else f"{x:,.{digits}f}"

def us(x):
    if x is None:
        return "—"
    return f"{x / 1000:,.2f} ms" if x >= 1000 else f"{x} µs"

def throughput(r):
    if r.get("cycles_per_sec") is not None:
        return f"{num(r['cycles_per_sec'], 1)} cycles/s"
    if r.get("deliveries_per_sec") is not None:
        return f"{num(r['deliveries_per_sec'])} deliveries/s"
    return "—"

def lost(r):
    if r["scenario"] == "churn":
        return f"{r.get('cycle_failures', 0)} failed cycles"
    if r["scenario"] == "idle":
        return f"{r.get('connect_failed', 0)} failed, {r.get('disconnected', 0)} dropped"
    text = f"{num(r.get('lost'))} of {num(r.get('expected'))}"
    return text + (" ⚠" if r.get("lost") else "")

def rss(r):
    b = r.get("rss_per_conn_bytes")
    return "—" if b is None else f"{b / 1024:,.1f} KiB ({num(r.get('registered'))} conns)"

def cpu(r):
    return f"{r.get('generator_cpu_secs', 0):.2f} s ({r.get('generator_cpu_pct', 0):.0f} %)"

def ratio(r, peers):
    key, higher, label = PRIMARY[r["scenario"]]
    values = [p.get(key) for p in peers if p.get(key)]
    if r["server"] != "charla" or not values or not r.get(key):
        return ""
    best = max(values) if higher else min(values)
    return f"{r[key] / best:.2f}× ({label}, {'higher' if higher else 'lower'} is better)"

lines = [
    "| scenario | server | throughput | lost | p99 listeners | p99 senders | p99 generator lag | server RSS/conn | generator CPU | server CPU | charla ÷ best peer |",
    "|---|---|---|---|---|---|---|---|---|---|---|",
]
for scenario in dict.fromkeys(r["scenario"] for r in rows):
    group = [r for r in rows if r["scenario"] == scenario]
    peers = [r for r in group if r["server"] != "charla" and "failed" not in r]
    for r in group:
        name = f"{r['server']} ({r.get('proto', '?')})"
        if "failed" in r:
            lines.append(f"| {scenario} | {name} | failed: {r['failed']} | | | | | | | | |")
            continue
        note = " (timed out)" if r.get("timed_out") else ""
        lines.append(
            f"| {scenario} | {name} | {throughput(r)}{note} | {lost(r)} | "
            f"{us(r.get('p99_listeners_us'))} | {us(r.get('p99_senders_us'))} | {us(r.get('p99_generator_lag_us'))} | {rss(r)} | "
            f"{cpu(r)} | {num(r.get('server_cpu_secs'), 2)} s | {ratio(r, peers)} |"
        )
# Each primary figure as the chart and the list of runs show it: unit, scale, format.
UNITS = {
    "deliveries_per_sec": ("million deliveries/s", 1e-6, "{:.2f}"),
    "p99_listeners_us": ("p99 latency to listeners, ms", 1e-3, "{:.2f}"),
    "rss_per_conn_bytes": ("server memory per idle connection, KiB", 1 / 1024, "{:.2f}"),
    "cycles_per_sec": ("connect-join-quit cycles/s", 1, "{:,.0f}"),
}

# Every run's figure, where a scenario had several: the best alone would hide a server that
# stalls in most of them.
every = []
for (scenario, server), group in groups.items():
    if len(group) < 2:
        continue
    key = PRIMARY[scenario][0]
    unit, scale, fmt = UNITS[key]
    figures = ", ".join(
        "failed" if "failed" in r or r.get(key) is None
        else f"{fmt.format(r[key] * scale)} at {r.get('server_cpu_secs', 0):.2f} s" for r in group)
    every.append(f"- {scenario} / {server}, {len(group)} runs, {unit} at server CPU: {figures}")
if every:
    lines += ["", "Each row above is the server's best run of the scenario (of those that lost nothing, if any did); every run, in order:", "", *every]
errors = [f"- {r['scenario']} / {r['server']}: {r['first_error']}" for r in rows if r.get("first_error")]
shown = os.path.relpath(chart, os.path.dirname(out) or ".")
picture = f"![charla, ngIRCd and InspIRCd side by side, a panel per scenario]({shown})"
section = [BEGIN, "", open(header).read().rstrip(), "", picture, "", *lines, ""]
if errors:
    section += ["First error each run reported:", "", *errors, ""]
section += [open(footer).read().rstrip(), "", END]

text = open(out).read() if os.path.exists(out) else "# Benchmarks\n\n"
if BEGIN in text and END in text:
    before, rest = text.split(BEGIN, 1)
    after = rest.split(END, 1)[1]
    text = before + "\n".join(section) + after
else:
    text = text.rstrip() + "\n\n" + "\n".join(section) + "\n"
os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
open(out, "w").write(text)

# The chart: one panel per scenario (each has its own unit), one bar per server, each bar
# labelled with its figure. DATA holds one block per scenario, as gnuplot's `index` reads them.
COLORS = {"ngircd": 0x8C8C8C, "inspircd": 0xE6A23C, "charla": 0x2B7BB9}
panels = []
with open(data, "w") as f:
    f.write("# bench/compare.sh: the figures of docs/benchmarks.svg, one block per scenario\n")
    f.write("# scenario\tserver\tvalue\tlabel\tcolor (0xRRGGBB, in decimal)\n")
    for scenario in dict.fromkeys(r["scenario"] for r in rows):
        key, higher, _ = PRIMARY[scenario]
        unit, scale, fmt = UNITS[key]
        bars = [r for r in rows if r["scenario"] == scenario and r.get(key) is not None]
        if not bars:
            continue
        if panels:
            f.write("\n\n")
        for r in bars:
            value = r[key] * scale
            color = COLORS.get(r["server"], 0x555555)
            f.write(f"{scenario}\t{r['server']}\t{value:.6g}\t{fmt.format(value)}\t{color}\n")
        panels.append((scenario, f"{unit}, {'higher' if higher else 'lower'} is better"))
columns = min(len(panels), 3) or 1
rows_of_panels = (len(panels) + columns - 1) // columns
with open(script, "w") as g:
    g.write(f"""set terminal svg size {360 * columns},{300 * rows_of_panels} dynamic font "sans,11" background "#ffffff"
set output "{chart}"
set datafile separator "\\t"
set style fill solid 0.9 border -1
set boxwidth 0.6
set yrange [0:*]
set offsets 0, 0, graph 0.15, 0
set grid ytics lc "#dddddd"
set border 3
set xtics nomirror scale 0
set ytics nomirror
set key off
set multiplot layout {rows_of_panels},{columns}
""")
    for index, (scenario, unit) in enumerate(panels):
        g.write(f'set title "{scenario}\\n{{/*0.8 {unit}}}"\n')
        g.write(f'plot "{data}" index {index} using 0:3:5:xtic(2) with boxes lc rgb variable, '
                f'"" index {index} using 0:3:4 with labels offset 0,0.7\n')
    g.write("unset multiplot\n")
PY
gnuplot "$work/chart.gp"
echo "compare.sh: wrote $OUT, $DATA and $CHART" >&2
