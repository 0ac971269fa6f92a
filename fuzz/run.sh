#!/bin/sh
# Runs every libFuzzer harness in BUILD_DIR for $FUZZ_TIME seconds each
# (default 60). Seeds come from fuzz/corpus/<harness>/ and are copied into
# fuzz/corpus-run/<harness>/ (git-ignored), so new inputs the fuzzer finds
# never dirty the checked-in corpus; crash reproducers land in
# fuzz/corpus-run/ too. Exits non-zero if any harness finds a crash.
#
#   sh fuzz/run.sh build-fuzz
set -eu

if [ $# -ne 1 ]; then
	echo "usage: sh fuzz/run.sh BUILD_DIR" >&2
	exit 2
fi
build=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
time=${FUZZ_TIME:-60}
failed=""

for h in fuzz_parser fuzz_chunked; do
	bin="$build/$h"
	if [ ! -x "$bin" ]; then
		echo "run.sh: $bin not built" >&2
		exit 2
	fi
	run="$here/corpus-run/$h"
	mkdir -p "$run"
	if [ -d "$here/corpus/$h" ]; then
		cp "$here/corpus/$h/"* "$run/" 2>/dev/null || true
	fi
	dict=""
	if [ -f "$here/$h.dict" ]; then
		dict="-dict=$here/$h.dict"
	fi
	echo "run.sh: $h for ${time}s" >&2
	# shellcheck disable=SC2086
	if ! "$bin" -max_total_time="$time" -max_len=8192 -timeout=10 \
		-print_final_stats=1 \
		-artifact_prefix="$here/corpus-run/$h-" $dict "$run" \
		2>"$here/corpus-run/$h.log"; then
		echo "run.sh: $h FAILED, see $here/corpus-run/$h.log" >&2
		tail -n 40 "$here/corpus-run/$h.log" >&2
		failed="$failed $h"
		continue
	fi
	grep -E "^stat::number_of_executed_units|^Done " \
		"$here/corpus-run/$h.log" >&2 || true
done

if [ -n "$failed" ]; then
	echo "run.sh: crashes found in:$failed" >&2
	exit 1
fi
echo "run.sh: no crash found" >&2
