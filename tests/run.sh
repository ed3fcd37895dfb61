#!/bin/sh
# Build reimage and run every test: once as built (-Wall -Wextra -Werror),
# once under AddressSanitizer + UndefinedBehaviorSanitizer.  Both replay
# the fuzz targets' corpora (tests/fuzz/); with CI=true, each target is
# then also fuzzed for FUZZ_SECONDS (60) with libFuzzer (tests/fuzz/run.sh).
#   sh tests/run.sh            both builds
#   sh tests/run.sh -R http    pass ctest arguments (an area, a label...)
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
sh "$top/tests/deps.sh"
jobs=$(nproc 2>/dev/null || echo 2)
for variant in build build-asan; do
	san=OFF
	[ "$variant" = build-asan ] && san=ON
	cmake -S "$top" -B "$top/$variant" -DCMAKE_BUILD_TYPE=Debug -DREIMAGE_SANITIZE=$san >/dev/null
	cmake --build "$top/$variant" -j "$jobs"
	echo "== tests ($variant) =="
	ctest --test-dir "$top/$variant" --output-on-failure -j "$jobs" "$@"
done
if [ "${CI:-}" = true ]; then
	echo "== fuzz (tests/fuzz/run.sh) =="
	sh "$top/tests/fuzz/run.sh"
fi
