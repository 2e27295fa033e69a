#!/usr/bin/env bash
# Set up DeePAQ in ./.venv (idempotent). With --system, also install the system packages the
# test suite uses (real codecs, PortAudio, a virtual display's libraries) through apt-get.
#
#   bash tools/bootstrap.sh            # Python environment only
#   bash tools/bootstrap.sh --system   # + apt packages (needs root or sudo)
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" == "--system" ]]; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    [[ "$(id -u)" != "0" ]] && SUDO="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    # ffmpeg/lame/opus-tools/vorbis-tools/sox: real encoders; libportaudio2: playback;
    # libegl1/libgl1/libxkbcommon0/libfontconfig1/libdbus-1-3: Qt's offscreen platform;
    # libxcb-cursor0/libxkbcommon-x11-0/libxcb-*: Qt's X11 (xcb) platform for a real window.
    $SUDO apt-get install -y -qq --no-install-recommends \
      ffmpeg lame opus-tools vorbis-tools sox libsndfile1 libportaudio2 \
      libegl1 libgl1 libxkbcommon0 libfontconfig1 libdbus-1-3 \
      libxcb-cursor0 libxkbcommon-x11-0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 >/dev/null
  else
    echo "bootstrap: apt-get not found; install ffmpeg, lame, opus-tools, vorbis-tools, sox and PortAudio yourself." >&2
  fi
fi

PY="${PYTHON:-python3}"
[[ -x .venv/bin/python ]] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# A pinned torch first: where a local CPU build of this version is offered it is taken as is,
# instead of an unpinned resolve pulling a multi-GB CUDA build.
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[gui,test,eval,cluster]"
echo "bootstrap: ready (.venv)" >&2
