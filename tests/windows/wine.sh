#!/bin/sh
# wine.sh -- run the windows backend's tests under Debian's wine64.
#   wine.sh prefix DIR          make a fresh wine prefix in DIR (bounded in time)
#   wine.sh run DIR EXE CASE    run one case of EXE in that prefix
#   wine.sh stop DIR            stop the prefix's wineserver
# No display is needed: the tests are console programs.
set -eu
cmd=$1 prefix=$2
export WINEPREFIX="$prefix" WINEDEBUG=-all WINEARCH=win64
# No Mono or Gecko installer dialogs: nothing here needs them.
export WINEDLLOVERRIDES="mscoree,mshtml="
unset DISPLAY WAYLAND_DISPLAY
wine64=$(command -v wine64 || true)
[ -n "$wine64" ] || wine64=/usr/lib/wine/wine64
wineserver=$(command -v wineserver || true)
[ -n "$wineserver" ] || wineserver=/usr/lib/wine/wineserver
if [ ! -x "$wine64" ]; then
	echo "wine64 is not installed (tests/deps.sh installs it)" >&2
	exit 77
fi
case $cmd in
prefix)
	"$wineserver" -k 2>/dev/null || true
	rm -rf "$prefix"
	mkdir -p "$prefix"
	# wineboot can hang on a broken setup: two bounded tries.
	for try in 1 2; do
		if timeout -k 10 180 "$wine64" wineboot --init >"$prefix.log" 2>&1 &&
		   timeout -k 10 60 "$wineserver" -w; then
			# One server for the whole run (each case then starts in
			# a fraction of a second); it ends 10 minutes after its
			# last client if `stop` never comes.
			"$wineserver" -p600 </dev/null >/dev/null 2>&1
			exit 0
		fi
		echo "wineboot attempt $try failed:" >&2
		tail -20 "$prefix.log" >&2
		"$wineserver" -k 2>/dev/null || true
	done
	exit 1 ;;
run)
	exe=$3 case=$4
	[ -f "$prefix/system.reg" ] || { echo "no wine prefix in $prefix" >&2; exit 1; }
	# Through a file: wine's own services, started by the first program,
	# live on and would hold CTest's output pipe open.
	log=$(mktemp "$prefix/run.XXXXXX")
	rc=0
	timeout -k 10 100 "$wine64" "$exe" "$case" </dev/null >"$log" 2>&1 || rc=$?
	cat "$log"
	rm -f "$log"
	exit $rc ;;
stop)
	"$wineserver" -k 2>/dev/null || true ;;
*)
	echo "usage: wine.sh prefix|run|stop DIR [EXE CASE]" >&2
	exit 2 ;;
esac
