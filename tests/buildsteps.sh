# Sourced by the fixture build scripts (tests/*/build.sh): one line per component as it starts and as it ends,
# with the time it took; "cached" for a component already built. The Go tool's own output (downloads, compile
# lines) goes to a log that is printed only when a step fails. Callers set BUILD_LOG and call build_done last.
_build_t0=$SECONDS
_fmt() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }
say() { echo "$*" >&2; }
cached() { local c; for c in "$@"; do say "  $c: cached"; done; }
# quietly CMD...: CMD's stdout and stderr into $BUILD_LOG; on failure, its last lines and the failure.
quietly() {
  if ! "$@" >>"$BUILD_LOG" 2>&1; then
    say "error: $* failed; the last lines of $BUILD_LOG:"
    tail -n 40 "$BUILD_LOG" >&2
    return 1
  fi
}
# step NAME CMD...: "  NAME: building", CMD quietly, "  NAME: built in 1m05s".
step() { _timed building built "$@"; }
# fetch NAME CMD...: the same for a download ("downloading", "downloaded in").
fetch() { _timed downloading downloaded "$@"; }
_timed() {
  local doing=$1 done=$2 name=$3 t0=$SECONDS
  shift 3
  say "  $name: $doing"
  quietly "$@"
  say "  $name: $done in $(_fmt $((SECONDS - t0)))"
}
build_done() { say "$1: built in $(_fmt $((SECONDS - _build_t0)))"; }
