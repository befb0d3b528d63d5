#!/usr/bin/env bash
# Make (once) a Python virtualenv with pinned requirements and print its python: testkit/python's (the Confluent
# clients), or the file given (deploy/s3's moto). Cached under $MINIPIPE_CACHE by a hash of the requirements, so a
# change of pins makes a new one.
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"
req=${1:-"$DEPLOY_DIR/../testkit/python/requirements.txt"}
hash=$(sha256sum "$req" | cut -c1-12)
venv="$MINIPIPE_CACHE/venv-$hash"
make_venv() {
  [ -f "$venv/.complete" ] && return 0
  command -v python3 >/dev/null || die "python3 not found"
  log "creating $venv with $(basename "$req")"
  rm -rf "$venv"
  python3 -m venv "$venv" >&2 || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$req" >&2 || die "pip install -r $req failed"
  touch "$venv/.complete"
}
with_lock "venv-$hash" make_venv
echo "$venv/bin/python"
