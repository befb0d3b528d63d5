#!/usr/bin/env bash
# Make sure Debian's Chromium is installed for the console's browser tests, and print its path. Installed from
# Debian's packages with apt-get (as root, or through sudo without a password) when it is missing; a machine where
# neither works gets a clear error naming the package. MINIPIPE_CHROMIUM names another browser binary to use.
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"
install_chromium() {
  if [ -n "${MINIPIPE_CHROMIUM:-}" ]; then
    [ -x "$MINIPIPE_CHROMIUM" ] || die "MINIPIPE_CHROMIUM=$MINIPIPE_CHROMIUM is not an executable"
    return 0
  fi
  command -v chromium >/dev/null && return 0
  apt_install chromium fonts-dejavu-core
}
with_lock chromium install_chromium
if [ -n "${MINIPIPE_CHROMIUM:-}" ]; then echo "$MINIPIPE_CHROMIUM"; else command -v chromium; fi
