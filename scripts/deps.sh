#!/usr/bin/env bash
# scripts/deps.sh: install the Debian packages randlora's build, tests and
# default run need. Installs only what is missing (with sudo when not root);
# when everything is present it only asks dpkg and returns.
set -euo pipefail

packages=(
    build-essential pkg-config
    libopenblas-dev                 # GEMMs
    libdnnl-dev                     # oneDNN: bf16 GEMMs (AMX, AVX512-BF16)
    libhdf5-dev hdf5-tools          # results files (h5dump to inspect them)
    check libsubunit-dev            # the test framework
    zlib1g-dev                      # gzip'd IDX files
    libpng-dev libjpeg62-turbo-dev  # class-per-folder image datasets
    libinih-dev                     # experiment files (INI)
    libcjson-dev                    # config.json, vocab.json, adapter_config.json
    libpcre2-dev                    # the tokenizers' pre-tokenisation regexes
    libicu-dev                      # NFC for tokenizer.json normalizers (Qwen2)
    gnuplot-nox                     # figures
    libopenmpi-dev openmpi-bin      # data-parallel training (core/dist.c; docs/cluster.md)
    clang libclang-rt-dev libomp-dev # make fuzz (libFuzzer, ASan, UBSan; OpenMP under clang)
    dataset-fashion-mnist           # the default real benchmark
)

missing=()
for p in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [[ $status == "install ok installed" ]] || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "scripts/deps.sh: installing ${missing[*]}" >&2
sudo=""
if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || { echo "scripts/deps.sh: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
    sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
