#!/usr/bin/env bash
# run.sh — fuzz the host's mesibo.conf parser (conf_parse in ../conf.c) with
# libFuzzer, AddressSanitizer and UndefinedBehaviorSanitizer.
#
#   cabi/host/fuzz/run.sh [TIME]     fuzz for TIME (Go-style: 300s, 5m, 1h;
#                                    default 60s), then re-run every input
#   cabi/host/fuzz/run.sh --regress  only re-run the checked-in inputs
#
# Needs clang and libclang-rt-14-dev (Debian) or another clang with the
# fuzzer runtime; --regress falls back to gcc (regress.c) without them.
# Builds into $OUT (default build/fuzz). The checked-in seeds and
# regression inputs are in corpus/ (a finding goes there as
# regress-<what>.conf once fixed); the working corpus grows in $OUT/corpus.
# Exits non-zero on a crash, a leak or a failed check (the input is saved as
# $OUT/crash-* and printed).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
OUT=${OUT:-$root/build/fuzz}
CC=${CLANG:-clang}
mode=fuzz
t=${1:-60s}
if [ "$t" = --regress ]; then mode=regress; t=0s; fi
case "$t" in
*h) secs=$((${t%h} * 3600)) ;;
*m) secs=$((${t%m} * 60)) ;;
*s) secs=${t%s} ;;
*) secs=$t ;;
esac
mkdir -p "$OUT/corpus"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:quarantine_size_mb=64:malloc_context_size=10
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
if ! command -v "$CC" >/dev/null 2>&1 || ! echo 'int LLVMFuzzerTestOneInput(const char *d, long n){(void)d;(void)n;return 0;}' |
	"$CC" -x c -fsanitize=fuzzer -o /dev/null - 2>/dev/null; then
	if [ "$mode" = regress ]; then
		# no libFuzzer: replay the checked-in inputs with gcc and the sanitizers
		gcc -std=c11 -D_GNU_SOURCE -g -O1 -Wall -Wextra -fsanitize=address,undefined -fno-sanitize-recover=all \
			-o "$OUT/conf_regress" "$here/conf_fuzz.c" "$here/regress.c" "$root/cabi/host/conf.c"
		"$OUT/conf_regress" "$here"/corpus/*
		exit 0
	fi
	echo "fuzz: $CC with the libFuzzer runtime not found; install it: apt-get install -y clang libclang-rt-14-dev" >&2
	exit 1
fi
bin=$OUT/conf_fuzz
"$CC" -std=c11 -D_GNU_SOURCE -g -O1 -Wall -Wextra \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer \
	-o "$bin" "$here/conf_fuzz.c" "$root/cabi/host/conf.c"
# every checked-in input, once
"$bin" -runs=0 "$here/corpus" >"$OUT/regress.log" 2>&1 || {
	cat "$OUT/regress.log"
	echo "fuzz: conf_parse failed on a checked-in input" >&2
	exit 1
}
echo "fuzz: conf_parse: $(ls "$here/corpus" | wc -l) checked-in inputs ok"
[ "$mode" = regress ] && exit 0
echo "fuzz: conf_parse for ${secs}s (libFuzzer + ASan + UBSan)"
"$bin" -max_total_time="$secs" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
	-dict="$here/conf.dict" -artifact_prefix="$OUT/" -print_final_stats=1 \
	"$OUT/corpus" "$here/corpus" >"$OUT/fuzz.log" 2>&1 || {
	tail -60 "$OUT/fuzz.log"
	echo "fuzz: conf_parse: a finding; the input is $OUT/crash-* (add it to $here/corpus as regress-*.conf once fixed)" >&2
	exit 1
}
grep -E '^stat::number_of_executed_units|^#[0-9]+.*DONE' "$OUT/fuzz.log" | tail -2 || true
echo "fuzz: conf_parse clean for ${secs}s"
