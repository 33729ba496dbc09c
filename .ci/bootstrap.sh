#!/usr/bin/env bash
# Set up a fresh Debian / Raspberry Pi OS machine for Jiancha, then run the demo or the tests.
#   bash .ci/bootstrap.sh demo [jiancha demo flags]
#   bash .ci/bootstrap.sh test [pytest flags]
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
  .venv/bin/python -c 'import agent, hub, protocol, provisioning, paho.mqtt, aiohttp' \
    || { say "the package did not install; see pip's output above"; exit 1; }
  echo "$want" > "$stamp"
fi

case "$mode" in
  demo) exec .venv/bin/jiancha demo "$@" ;;
  test) exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@" ;;
  install) say "ready: .venv/bin/jiancha" ;;
esac
