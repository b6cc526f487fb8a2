#!/usr/bin/env bash
# Installs everything stichotrope needs to build, test and benchmark on Debian 12.
# Idempotent: when every tool is already present it only checks and exits.
set -euo pipefail

packages=(
  clang-19 clang-tools-19 libclang-rt-19-dev clang-format-19  # compiler, scan-deps, sanitizer runtimes
  llvm-19                                        # llvm-symbolizer (sanitizer reports), llvm-objdump (report.py)
  ninja-build                                    # the only generator CMake supports for C++ modules
  libboost1.83-dev libboost-test1.83-dev         # Boost 1.83 (bookworm-backports): Boost.Test for the unit tests; Boost.Asio and Beast for stichotrope::boost_asio
  libexpected-dev                                # tl::expected error values
  libbenchmark-dev                               # Google Benchmark programs
  libasio-dev                                    # async server demo and Asio integration
  nlohmann-json3-dev                             # reading results JSON back (CLI, tests)
  libtomlplusplus-dev                            # TOML configuration files (optional for the library)
  libmicrohttpd-dev                              # the optional HTTP endpoint (/metrics, the live view)
  slowhttptest wrk                               # slow clients and load for the endpoint's test
  prometheus                                     # a real Prometheus server for the endpoint's test
  opentelemetry-cpp-dev                          # the optional OTLP exporter (bookworm-backports) ...
  libabsl-dev libprotobuf-dev libgrpc++-dev protobuf-compiler-grpc  # ... whose CMake package loads these
  python3-opentelemetry-proto python3-protobuf   # the OTLP receiver of its test (Debian's /usr/bin/python3)
  chromium                                       # the live view's browser test (driven by playwright-core)
  python3                                        # benchmarks/report.py
  git ca-certificates
)

cmake_ok() {
  command -v cmake >/dev/null 2>&1 || return 1
  local v
  v=$(cmake --version | sed -n 's/^cmake version \([0-9]*\)\.\([0-9]*\).*/\1 \2/p')
  set -- $v
  [ "${1:-0}" -gt 3 ] || { [ "${1:-0}" -eq 3 ] && [ "${2:-0}" -ge 28 ]; }
}

here="$(cd "$(dirname "$0")" && pwd)"

all_present() {
  cmake_ok || return 1
  command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || return 1
  [ -d "$here/test/web/node_modules/playwright-core" ] || return 1
  local p
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || return 1
  done
}

if all_present; then
  echo "setup.sh: all build dependencies present"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  sudo=sudo
else
  sudo=
fi
export DEBIAN_FRONTEND=noninteractive

# CMake >= 3.28 comes from bookworm-backports. Enable that suite by copying the
# system's own source entry with the suite renamed, so no mirror address is
# ever written into this repository.
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
backports="${codename}-backports"
if ! grep -rqs "$backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    # deb822: take the first stanza (the main archive), rename its suites.
    awk -v bp="$backports" '
      BEGIN { RS=""; ORS="\n\n" }
      NR==1 {
        n = split($0, lines, "\n"); out = ""
        for (i = 1; i <= n; i++) {
          if (lines[i] ~ /^Suites:/) lines[i] = "Suites: " bp
          out = out lines[i] "\n"
        }
        printf "%s", out; exit
      }' /etc/apt/sources.list.d/debian.sources |
      $sudo tee /etc/apt/sources.list.d/stichotrope-backports.sources >/dev/null
  elif [ -f /etc/apt/sources.list ]; then
    grep -E "^deb .* ${codename} " /etc/apt/sources.list | head -n 1 |
      sed -E "s/ ${codename} / ${backports} /" |
      $sudo tee /etc/apt/sources.list.d/stichotrope-backports.list >/dev/null
  else
    echo "setup.sh: cannot find the system's apt source entry to derive ${backports}" >&2
    exit 1
  fi
fi

$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${packages[@]}"
cmake_ok || $sudo apt-get install -y -q --no-install-recommends -t "$backports" cmake
cmake_ok || { echo "setup.sh: could not install CMake >= 3.28" >&2; exit 1; }
# Node.js for the browser test: the machine's own when it has one (Node 18 or
# newer), else Debian's. playwright-core comes from npm, pinned by
# test/web/package-lock.json; it drives Debian's chromium (it downloads no
# browser of its own).
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  $sudo apt-get install -y -q --no-install-recommends nodejs npm
fi
if [ ! -d "$here/test/web/node_modules/playwright-core" ]; then
  (cd "$here/test/web" && npm ci --no-audit --no-fund)
fi
echo "setup.sh: done ($(cmake --version | head -n1), $(clang++-19 --version | head -n1))"
