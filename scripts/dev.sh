#!/usr/bin/env bash
# Developer entry points behind the Makefile: `scripts/dev.sh run|test|check|install`.
# Each installs what it needs first (a Python 3.13+ venv in .venv, and for tests a real
# redis-server), so every command works on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv

# Compiled bytecode. Where PYTHONDONTWRITEBYTECODE is set, every pytest worker and every
# process a test starts compiles the code base from source again, and pytest redoes its
# assertion rewriting of every test module per worker; written under the venv instead, the
# source tree stays as clean as the setting asked (docs/decisions.md).
if [ -n "${PYTHONDONTWRITEBYTECODE:-}" ]; then
    unset PYTHONDONTWRITEBYTECODE
    export PYTHONPYCACHEPREFIX="${PYTHONPYCACHEPREFIX:-$PWD/$VENV/pycache}"
fi

find_python() {
    # Honour $PYTHON, then the usual names; the repo's .python-version makes pyenv's `python`
    # resolve to 3.13 where pyenv is installed.
    local candidate
    for candidate in ${PYTHON:-} python3.13 python3.14 python3 python; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 13))' 2>/dev/null; then
            command -v "$candidate"
            return 0
        fi
    done
    echo "error: Python 3.13 or newer is required (set PYTHON=/path/to/python3.13)" >&2
    return 1
}

install() {
    if [ ! -x "$VENV/bin/python" ] ||
        ! "$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 13))' 2>/dev/null; then
        local python
        python=$(find_python)
        echo "creating $VENV with $("$python" --version)" >&2
        rm -rf "$VENV"
        "$python" -m venv "$VENV"
    fi
    # Reinstall only when the dependency list changed.
    local stamp="$VENV/.installed" digest
    digest=$(sha256sum pyproject.toml | cut -d' ' -f1)
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$digest" ]; then
        # uv resolves and installs the same versions in ~6 s where pip takes ~30 s (a
        # fresh clone's first `make test`). Where uv cannot be had or cannot reach an
        # index (it reads no pip.conf), pip does it.
        if "$VENV/bin/python" -m pip install --quiet uv >/dev/null 2>&1 &&
            "$VENV/bin/python" -m uv pip install --quiet --python "$VENV/bin/python" -e ".[dev]"; then
            :
        else
            echo "installing with pip" >&2
            "$VENV/bin/python" -m pip install --quiet --upgrade pip
            "$VENV/bin/python" -m pip install --quiet -e ".[dev]"
        fi
        echo "$digest" >"$stamp"
    fi
    # Compiled once here, not by each test worker and each process the tests start on a
    # first run (they would all compile the same modules at once). Up-to-date files are
    # skipped, so this is quick after the first time.
    "$VENV/bin/python" -m compileall -q -j 0 src tests benchmarks >/dev/null
}

ensure_redis() {
    command -v redis-server >/dev/null 2>&1 && return 0
    echo "redis-server is missing; the cache tests need a real Redis. Installing it..." >&2
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
    elif command -v sudo >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
        sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
    elif command -v brew >/dev/null 2>&1; then
        brew install redis
    else
        echo "error: install redis-server (Debian/Ubuntu: apt-get install -y redis-server; macOS: brew install redis)" >&2
        return 1
    fi
    # Debian starts a system instance on 6379; the tests start their own on free ports.
    command -v redis-server >/dev/null 2>&1
}

ensure_ffmpeg() {
    command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1 && return 0
    echo "ffmpeg is missing; the media tests cut and probe real videos. Installing it..." >&2
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null
    elif command -v sudo >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
        sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null
    elif command -v brew >/dev/null 2>&1; then
        brew install ffmpeg
    else
        echo "error: install ffmpeg (Debian/Ubuntu: apt-get install -y ffmpeg; macOS: brew install ffmpeg)" >&2
        return 1
    fi
}

ensure_speech() {
    # espeak-ng speaks the filler the transcription tests insert; pocketsphinx-testdata
    # ships the recorded (LibriVox) speech they transcribe.
    command -v espeak-ng >/dev/null 2>&1 &&
        [ -d /usr/share/pocketsphinx/test/data/librivox ] && return 0
    echo "espeak-ng or pocketsphinx-testdata is missing; the transcription tests speak and recognise real audio. Installing them..." >&2
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng pocketsphinx-testdata >/dev/null
    elif command -v sudo >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
        sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng pocketsphinx-testdata >/dev/null
    else
        echo "error: install espeak-ng and pocketsphinx-testdata (Debian/Ubuntu: apt-get install -y espeak-ng pocketsphinx-testdata)" >&2
        return 1
    fi
}

ensure_wrk() {
    command -v wrk >/dev/null 2>&1 && return 0
    echo "wrk is missing; the benchmark suite's smoke test drives HTTP load with it. Installing it..." >&2
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
    elif command -v sudo >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
        sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
    elif command -v brew >/dev/null 2>&1; then
        brew install wrk
    else
        echo "error: install wrk (Debian/Ubuntu: apt-get install -y wrk; macOS: brew install wrk)" >&2
        return 1
    fi
}

case "${1:-}" in
install) install ;;
run)
    install
    shift
    exec "$VENV/bin/snipix" serve "$@"
    ;;
test)
    install
    ensure_redis
    ensure_ffmpeg
    ensure_speech
    ensure_wrk
    shift
    # One worker more than cores (each session fixture, the engine and redis-server
    # included, is per worker): a worker waiting on an fsync or a process it started
    # leaves a core idle otherwise (docs/decisions.md). `-n 0` in the arguments runs in
    # one process. worksteal: the few long process tests do not leave one worker
    # finishing alone.
    workers=$(($(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1) + 1))
    exec "$VENV/bin/pytest" -n "$workers" --dist worksteal "$@"
    ;;
lint)
    install
    "$VENV/bin/ruff" check .
    "$VENV/bin/ruff" format --check .
    "$VENV/bin/mypy"
    "$VENV/bin/lint-imports"
    ;;
*)
    echo "usage: scripts/dev.sh install|run|test|lint [args...]" >&2
    exit 2
    ;;
esac
