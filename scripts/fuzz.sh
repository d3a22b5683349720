#!/usr/bin/env bash
# Fuzzes charla with cargo-fuzz (libFuzzer): scripts/fuzz.sh [TARGET|all [SECONDS]].
#
#   scripts/fuzz.sh                    every target for 30 s each (what scripts/test.sh runs)
#   scripts/fuzz.sh irc_message 600    one target for ten minutes
#   scripts/fuzz.sh all 3600           every target for an hour each
#
# Targets (fuzz/fuzz_targets/, docs/RELIABILITY.md says what each checks): irc_message,
# plain_commands, sniff, chathistory, websocket. Each starts from its committed seeds (fuzz/seeds/TARGET)
# and the corpus earlier runs grew (fuzz/corpus/TARGET, not committed). An input that fails is
# saved under fuzz/artifacts/TARGET/ and the script fails; `cargo fuzz run TARGET FILE` (with
# RUSTC_BOOTSTRAP=1, from fuzz/) replays it. Make it a regression test in the normal suite.
#
# CHARLA_FUZZ_SANITIZER: none (default: panics and failed assertions are caught, and the code
# under test is safe Rust) or address (AddressSanitizer also catches memory errors in unsafe
# dependencies and in the bundled SQLite, which it instruments too; 3 to 10 times fewer runs a
# second, a longer build). Leak detection is off: the targets keep one history store for the
# whole run, which LeakSanitizer would take for a leak after every input and scan for (10x
# slower).
#
# cargo-fuzz is installed when missing. It needs nightly compiler flags: on the stable
# toolchain, RUSTC_BOOTSTRAP=1 allows them.
set -euo pipefail
cd "$(dirname "$0")/.."

targets=(irc_message plain_commands sniff chathistory websocket)
target=${1:-all}
seconds=${2:-30}
sanitizer=${CHARLA_FUZZ_SANITIZER:-none}
if [[ $target == all ]]; then
    chosen=("${targets[@]}")
elif [[ " ${targets[*]} " == *" $target "* ]]; then
    chosen=("$target")
else
    echo "fuzz.sh: no target '$target'; pick one of: ${targets[*]}, or all" >&2
    exit 2
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz"
    cargo install --locked cargo-fuzz
fi
export RUSTC_BOOTSTRAP=1

cd fuzz
start=$SECONDS
cargo fuzz build -O --sanitizer "$sanitizer"
echo "fuzz.sh: built in $((SECONDS - start)) s (sanitizer: $sanitizer)"

# The targets keep their history store in a directory of their own, removed afterwards.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for t in "${chosen[@]}"; do
    mkdir -p "corpus/$t"
    echo "fuzz.sh: $t for $seconds s"
    status=0
    TMPDIR=$scratch cargo fuzz run -O --sanitizer "$sanitizer" "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -detect_leaks=0 -print_final_stats=1 \
        >"$scratch/$t.log" 2>&1 || status=$?
    grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)' \
        "$scratch/$t.log" || true
    if [[ $status -ne 0 ]]; then
        tail -60 "$scratch/$t.log"
        echo "fuzz.sh: $t FAILED; the input is under fuzz/artifacts/$t/" >&2
        exit 1
    fi
    echo "fuzz.sh: $t: corpus of $(find "corpus/$t" -type f | wc -l) inputs"
done
