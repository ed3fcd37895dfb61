#!/bin/sh
# Fuzz every target for a fixed time with libFuzzer (clang,
# -fsanitize=fuzzer,address,undefined), starting from its seed corpus in
# tests/fuzz/corpus/<target>/.  New inputs go to a scratch corpus in the
# build directory, never into the tree; a crash stops the run with the
# reproducer's path -- add it to tests/fuzz/corpus/<target>/crash-<what>
# with the fix, so that every test run replays it.
#   sh tests/fuzz/run.sh                 every target, FUZZ_SECONDS (60) each
#   sh tests/fuzz/run.sh journal         one target
# Environment: FUZZ_SECONDS, FUZZ_BUILD (default build-fuzz).
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
seconds=${FUZZ_SECONDS:-60}
build=$top/${FUZZ_BUILD:-build-fuzz}
targets=${*:-envelope journal extract toc}
command -v clang >/dev/null || { echo "fuzz: clang is not installed" >&2; exit 1; }
CC=clang cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=Debug -DREIMAGE_FUZZ=ON \
	-DCMAKE_C_COMPILER=clang >/dev/null
for t in $targets; do
	cmake --build "$build" --target "fuzz-$t" -j "$(nproc 2>/dev/null || echo 2)" >/dev/null
done
# The targets' scratch directories, in memory; what a crash leaves there
# goes with the run.
scratch=$(mktemp -d "${TMPDIR:-/dev/shm}/reimage-fuzz-run.XXXXXX" 2>/dev/null || mktemp -d)
trap 'rm -rf "$scratch"' EXIT
export FUZZ_SCRATCH="$scratch"
status=0
for t in $targets; do
	work=$build/fuzz-corpus/$t
	mkdir -p "$work" "$build/fuzz-crashes"
	echo "== fuzz $t for $seconds s =="
	# One process, no forks: the targets share a scratch directory each.
	if ! ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		LSAN_OPTIONS="suppressions=$top/tests/lsan.supp:print_suppressions=0" \
		"$build/fuzz-$t" -max_total_time="$seconds" -timeout=25 -rss_limit_mb=4096 \
		-artifact_prefix="$build/fuzz-crashes/$t-" -print_final_stats=1 \
		"$work" "$top/tests/fuzz/corpus/$t"; then
		echo "fuzz: $t failed; reproducers in $build/fuzz-crashes/ (add them to" \
			"tests/fuzz/corpus/$t/ with the fix)" >&2
		status=1
	fi
done
exit $status
