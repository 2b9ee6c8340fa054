#!/usr/bin/env bash
# Sets up alm_jax on a Debian/Ubuntu machine: the one place that names the system packages.
#
#   tools/setup.sh          what mixing needs: a virtual environment (.venv) with alm_jax
#   tools/setup.sh --test   also everything the test suite uses: the system packages below
#                           and the test and ONNX extras (README: "Quick start")
#
# Root: only apt-get (through sudo when not root). Without --test, apt-get runs only when
# python3 cannot create a virtual environment (Debian's python3-venv is missing). The venv goes to
# $ALM_VENV (default .venv in the checkout). .ci/run runs `tools/setup.sh --test`.
set -euo pipefail
cd "$(dirname "$0")/.."

TEST=0
for arg in "$@"; do
  case "$arg" in
    --test) TEST=1 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "tools/setup.sh: unknown argument $arg (use --test or nothing)" >&2; exit 2 ;;
  esac
done

# What mixing needs from the system: a venv-capable python3; gcc builds the live mixer's C audio
# callback (optional: without it `alm_jax.live` uses its Python callback).
BASE_PACKAGES=(python3 python3-venv python3-dev gcc libc6-dev)
# What the tests use as well: FluidSynth, the Debian General MIDI soundfonts, the AVL and Hydrogen
# drum kits (rendered_live renders instrument parts with all of them); chromium (the listening-test page in a
# real headless browser); jackd2 (the live mixer's tests run a real JACK server, jackd -d dummy).
TEST_PACKAGES=(fluidsynth timgm6mb-soundfont musescore-general-soundfont-small
               avldrums.lv2-soundfont csound-soundfont hydrogen-drumkits chromium jackd2)

apt_install() {
  if ! command -v apt-get >/dev/null; then
    echo "tools/setup.sh: no apt-get here; install these yourself: $*" >&2
    return 0
  fi
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    echo "tools/setup.sh: installing system packages with sudo: $*" >&2
    sudo=(sudo)
  fi
  local install=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq
                 --no-install-recommends)
  "${sudo[@]}" apt-get update -qq
  if ! "${install[@]}" "$@"; then
    # One by one: a package this release lacks (Ubuntu's chromium is a snap) leaves the others in;
    # the tests that need a missing one skip, naming it.
    local missing=()
    for package in "$@"; do
      "${install[@]}" "$package" || missing+=("$package")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
      echo "tools/setup.sh: could not install ${missing[*]}; the tests that need them will skip" >&2
    fi
  fi
}

VENV=${ALM_VENV:-.venv}
PYTHON=${PYTHON:-python3}
if [ "$TEST" = 1 ]; then
  apt_install "${BASE_PACKAGES[@]}" "${TEST_PACKAGES[@]}"
elif [ ! -x "$VENV/bin/python" ] && ! "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then
  apt_install "${BASE_PACKAGES[@]}"
fi

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
if [ "$TEST" = 1 ]; then
  "$VENV/bin/python" -m pip install -q -e ".[test,onnx]"
else
  "$VENV/bin/python" -m pip install -q -e .
fi
"$VENV/bin/python" -m pip check
echo "tools/setup.sh: ready; run commands with $VENV/bin/python (or: source $VENV/bin/activate)"
