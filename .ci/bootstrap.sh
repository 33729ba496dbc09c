#!/usr/bin/env bash
# Set up a fresh Debian / Raspberry Pi OS machine for Jiancha, then run the demo or the tests.
#   bash .ci/bootstrap.sh demo [jiancha demo flags]
#   bash .ci/bootstrap.sh test [pytest flags]
# `test` checks the layers, lint and format first (seconds), then runs the suite twice: with the real clock, then with the wall clock of every process
# (pytest, hub, agents, Mosquitto) moved months ahead to 04:00 China time (docs/testing.md).
# Installs what is missing (python3-venv and mosquitto through apt when run as root or with
# sudo), creates .venv, installs the package with its test extras, and says what is missing
# when it cannot install it.
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-}"; shift || true
case "$mode" in demo|test|install) ;; *) echo "usage: bash .ci/bootstrap.sh demo|test|install [args...]" >&2; exit 64;; esac

say() { echo "jiancha-bootstrap: $*" >&2; }

PY="${PYTHON:-python3}"
if ! command -v "$PY" >/dev/null 2>&1; then
  say "python3 is missing: install Python 3.11 or newer (apt-get install python3 python3-venv)"; exit 1
fi
if ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
  say "Python 3.11 or newer is required; found $("$PY" --version 2>&1)"; exit 1
fi

if [ "$mode" = test ] && [ "$(id -u)" -ne 0 ]; then
  # tests/agent/test_health.py and tests/e2e/test_hub_disk_full.py fill a real small tmpfs to see
  # what a full disk does: mounting it needs root (docs/testing.md)
  say "the tests mount small tmpfs file systems for their full-disk cases and must run as root: sudo bash .ci/bootstrap.sh test"
  exit 1
fi
apt_missing=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || apt_missing+=(mosquitto)
"$PY" -c 'import ensurepip, venv' >/dev/null 2>&1 || apt_missing+=(python3-venv)
# a CJK font for sign images and PDF documents
ls /usr/share/fonts/truetype/wqy/wqy-zenhei.ttc >/dev/null 2>&1 || apt_missing+=(fonts-wqy-zenhei)
ls /usr/share/fonts/truetype/arphic/uming.ttc >/dev/null 2>&1 || apt_missing+=(fonts-arphic-uming)
command -v ffmpeg >/dev/null 2>&1 || apt_missing+=(ffmpeg)     # camera recording segments
if [ "$mode" = test ]; then   # tests read the PDFs back (pdftotext, pdffonts, pdftoppm)
  command -v pdftotext >/dev/null 2>&1 || apt_missing+=(poppler-utils)
fi
if [ "$mode" = test ]; then   # the browser tests drive a real headless Chromium
  command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || apt_missing+=(chromium)
fi
if [ "$mode" = test ]; then   # the hub's store tests run on PostgreSQL too (their own server, tests/pgserver.py)
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || apt_missing+=(postgresql)
  command -v setpriv >/dev/null 2>&1 || apt_missing+=(util-linux)
fi
if [ "$mode" = test ]; then   # the shifted-clock run builds .ci/faketime/shift.c
  command -v gcc >/dev/null 2>&1 || apt_missing+=(gcc)
  [ -f /usr/include/dlfcn.h ] || apt_missing+=(libc6-dev)
fi
if [ ${#apt_missing[@]} -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
      say "missing: ${apt_missing[*]}; run as root or install them: apt-get install ${apt_missing[*]}"; exit 1
    fi
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    say "missing: ${apt_missing[*]} and no apt-get here; install them with your package manager"; exit 1
  fi
  say "installing ${apt_missing[*]} with apt-get"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${apt_missing[@]}" >/dev/null
  # the Debian package starts a system broker on 1883; Jiancha runs its own and never uses it
fi

stamp=.venv/.jiancha-installed
want="$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  "$PY" -m venv .venv
fi
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  say "installing jiancha and its dependencies into .venv"
  .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]' 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -c 'import agent, hub, iobase, jiancha, protocol, provisioning, paho.mqtt, aiohttp, xdist' \
    || { say "the package did not install; see pip's output above"; exit 1; }
  echo "$want" > "$stamp"
fi

shift_offset() {
  # Seconds to add to the wall clock so that it reads 04:00 Asia/Shanghai on the target day:
  # today (China time) + JIANCHA_SHIFT_DAYS (default 107), or JIANCHA_SHIFT_DATE (YYYY-MM-DD).
  .venv/bin/python - <<'PY'
import math, os, time
from datetime import date, datetime, timedelta
from protocol.calendar import CST
now = time.time()
if os.environ.get("JIANCHA_SHIFT_DATE"):
    day = date.fromisoformat(os.environ["JIANCHA_SHIFT_DATE"])
else:
    days = int(os.environ.get("JIANCHA_SHIFT_DAYS", "107"))
    day = datetime.fromtimestamp(now, CST).date() + timedelta(days=days)
print(math.ceil(datetime(day.year, day.month, day.day, 4, 0, tzinfo=CST).timestamp() - now))
PY
}

run_checks() {
  # Before the tests, in seconds: the layer contracts (import-linter, [tool.importlinter] in
  # pyproject.toml, docs/architecture.md), lint and format (ruff, [tool.ruff]) on the whole tree.
  local started=$SECONDS
  echo "=== checks: layers (lint-imports), lint (ruff check), format (ruff format --check) ==="
  .venv/bin/lint-imports --no-cache \
    || { say "an import crosses the layers (docs/architecture.md); see the contract above"; exit 1; }
  .venv/bin/ruff check --no-cache . \
    || { say "ruff found problems; many fix themselves: .venv/bin/ruff check --fix ."; exit 1; }
  .venv/bin/ruff format --check --no-cache . \
    || { say "files not formatted; format them with: .venv/bin/ruff format ."; exit 1; }
  echo "=== checks passed in $((SECONDS - started))s ==="
}

run_tests() {
  # Run 1: the real clock. Run 2: the wall clock of every process (pytest, and the hub, agents
  # and Mosquitto it starts) moved ahead to 04:00 China time months from now by an LD_PRELOAD
  # shim (.ci/faketime/shift.c); monotonic time, sleeps and timeouts are untouched.
  # JIANCHA_TEST_CLOCKS=real|shifted|both (default both) picks the runs. See docs/testing.md.
  local which="${JIANCHA_TEST_CLOCKS:-both}" rc_real=0 rc_shift=0 shim="" offset shifted started preload
  case "$which" in real|shifted|both) ;; *) say "JIANCHA_TEST_CLOCKS must be real, shifted or both"; exit 64;; esac
  # Both runs spread the tests over JIANCHA_TEST_WORKERS processes (pytest-xdist; 0 = all in one
  # process). The default, 3 on CI's 2 cores, is more than the cores because about half of the
  # suite's time is spent waiting on real Mosquitto/hub/agent/Chromium processes. A worker that
  # runs out of tests takes some from another (worksteal). Each worker has its own PostgreSQL
  # (tests/conftest.py) and its own block of ports (tests/ports.py). docs/testing.md.
  local workers="${JIANCHA_TEST_WORKERS:-3}" par=()
  case "$workers" in auto|logical|[0-9]|[0-9][0-9]) ;; *) say "JIANCHA_TEST_WORKERS must be a number, auto or logical"; exit 64;; esac
  if [ "$workers" != 0 ]; then par=(-n "$workers" --dist worksteal); fi
  if [ "$which" != real ]; then   # build first: fail before a long run, not after it
    shim=.venv/jiancha-faketime/shift.so
    if [ ! -f "$shim" ] || [ .ci/faketime/shift.c -nt "$shim" ]; then
      mkdir -p "$(dirname "$shim")"
      gcc -shared -fPIC -O2 -Wall -fno-delete-null-pointer-checks -o "$shim" .ci/faketime/shift.c -ldl \
        || { say "could not build the clock shim .ci/faketime/shift.c with gcc"; exit 1; }
    fi
    shim="$(pwd)/$shim"
  fi
  if [ "$which" != shifted ]; then
    started=$SECONDS
    echo "=== jiancha tests, run 1/2: real clock, now $(TZ=Asia/Shanghai date '+%Y-%m-%d %H:%M CST (%a)') ==="
    env -u JIANCHA_CLOCK_OFFSET_S .venv/bin/python -m pytest -q -p no:cacheprovider "${par[@]}" "$@" || rc_real=$?
    echo "=== run 1/2 (real clock) finished: exit $rc_real after $((SECONDS - started))s ==="
  fi
  if [ "$which" != real ]; then
    offset="$(shift_offset)"   # computed now, so that the shifted run starts at 04:00 China time
    preload="$shim${LD_PRELOAD:+:$LD_PRELOAD}"
    # the shim must demonstrably move the clock before a green run under it means anything
    shifted="$(JIANCHA_CLOCK_OFFSET_S="$offset" LD_PRELOAD="$preload" .venv/bin/python -c \
      'import time, datetime; from protocol.calendar import CST; print(int(time.time()), datetime.datetime.now(CST).strftime("%Y-%m-%d %H:%M CST (%a)"))')"
    local drift=$(( ${shifted%% *} - $(date +%s) - offset ))
    if [ "$drift" -gt 60 ] || [ "$drift" -lt -60 ]; then
      say "the clock shim .ci/faketime/shift.c did not move the clock by ${offset}s (got ${shifted#* })"; exit 1
    fi
    shifted="${shifted#* }"
    started=$SECONDS
    echo "=== jiancha tests, run 2/2: shifted wall clock, now $shifted (JIANCHA_CLOCK_OFFSET_S=$offset, LD_PRELOAD=.ci/faketime/shift.c) ==="
    # the store engines are covered by run 1; dates are computed in Python alike over both
    JIANCHA_CLOCK_OFFSET_S="$offset" LD_PRELOAD="$preload" JIANCHA_TEST_ENGINES="${JIANCHA_TEST_ENGINES:-sqlite}" \
      .venv/bin/python -m pytest -q -p no:cacheprovider "${par[@]}" "$@" || rc_shift=$?
    echo "=== run 2/2 (shifted clock, started $shifted) finished: exit $rc_shift after $((SECONDS - started))s ==="
  fi
  if [ "$rc_real" -ne 0 ] || [ "$rc_shift" -ne 0 ]; then
    say "tests FAILED: real-clock run exit $rc_real, shifted-clock run exit $rc_shift"
    exit 1
  fi
}

case "$mode" in
  demo) exec .venv/bin/jiancha demo "$@" ;;
  test) run_checks; run_tests "$@" ;;
  install) say "ready: .venv/bin/jiancha" ;;
esac
