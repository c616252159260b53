#!/usr/bin/env bash
# System packages the test suite drives for real: an OpenSSH server, rsync and
# systemd-analyze (deploy), headless Chromium + its driver (drive page), avr-gcc, the
# Arduino AVR core and simavr (firmware: the tests build the sketch and a host-side harness
# on libsimavr with make and gcc), mmdebstrap and qemu-user-static (the CPU backends' arm64 test
# unpacks a Debian Bookworm arm64 root and runs it emulated as a Cortex-A76).
# Installs only what is missing, so a second run is quick; needs root or sudo.
set -euo pipefail

PACKAGES=(
    openssh-server openssh-client rsync systemd
    chromium chromium-driver
    gcc-avr binutils-avr avr-libc arduino-core-avr avrdude
    simavr libsimavr-dev libelf-dev pkg-config make gcc libc6-dev
    mmdebstrap arch-test qemu-user-static
)

missing=()
for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
elif command -v sudo >/dev/null; then
    SUDO=(sudo)
else
    echo "missing system packages: ${missing[*]}; install them as root (apt-get install ${missing[*]})" >&2
    exit 1
fi
echo "installing system packages: ${missing[*]}"
"${SUDO[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
