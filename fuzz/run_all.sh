#!/bin/bash
# Run the fuzz targets one after the other (never two at once), each for
# SECONDS (default 620), and print libFuzzer's final stats.
#
#   fuzz/run_all.sh [SECONDS] [TARGET...]
#
# New inputs go to a scratch corpus ($FUZZ_SCRATCH/<target>, default
# /tmp/rwsgi-fuzz/scratch), listed first so that libFuzzer writes there and
# the checked-in seeds (fuzz/corpus/<target>) stay as they are. With
# -jobs=1 libFuzzer writes its output to fuzz-0.log in the working
# directory: each run gets its own directory under $FUZZ_LOGS (default
# /tmp/rwsgi-fuzz/logs). Crashes land in fuzz/artifacts/<target>/.
set -u
here=$(cd "$(dirname "$0")" && pwd)
secs=${1:-620}
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(http_head chunked uwsgi_packet proxy_header)
scratch=${FUZZ_SCRATCH:-/tmp/rwsgi-fuzz/scratch}
logs=${FUZZ_LOGS:-/tmp/rwsgi-fuzz/logs}
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked || exit 1
cargo +nightly fuzz build --fuzz-dir "$here" || exit 1
failed=()
for t in "${targets[@]}"; do
    dir=$logs/$t-$(date +%Y%m%d-%H%M%S)
    mkdir -p "$dir" "$scratch/$t"
    (cd "$dir" && cargo +nightly fuzz run --fuzz-dir "$here" "$t" "$scratch/$t" "$here/corpus/$t" -- \
        -max_total_time="$secs" -max_len=4096 -jobs=1 -workers=1 -print_final_stats=1 >cargo.out 2>&1)
    status=$?
    echo "== $t ($secs s, log $dir/fuzz-0.log)"
    if [ "$status" -ne 0 ] || [ ! -f "$dir/fuzz-0.log" ]; then
        failed+=("$t")
        tail -20 "$dir/cargo.out"
        continue
    fi
    grep -E "panicked|Test unit written" "$dir/fuzz-0.log"
    grep -E "^#[0-9]+[[:space:]]+(DONE|pulse|NEW|REDUCE|INITED)" "$dir/fuzz-0.log" | tail -1
    grep -E "^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)" "$dir/fuzz-0.log"
    # libFuzzer can exit 0 with -jobs=1 while its worker found a crash.
    if grep -qE "panicked|Test unit written" "$dir/fuzz-0.log"; then
        failed+=("$t")
    fi
done
if ((${#failed[@]})); then
    echo "FAILED: ${failed[*]}" >&2
    exit 1
fi
