#!/usr/bin/env bash
# `make image`: minipipe's OCI image, built without a container engine. The base is Debian packages of this
# machine's release (the C/C++ runtime the cgo build of DuckDB links against, CA certificates, time zones),
# fetched with apt-get download into $MINIPIPE_CACHE/image/<release>-<hash> (again after a week, for security
# updates); deploy/image/main.go (go-containerregistry)
# writes the OCI layout and a tarball:
#   deploy/image.sh [--out DIR] [--tag NAME:TAG]     (default: bin/image and bin/minipipe-image.tar)
# Push with: go run github.com/google/go-containerregistry/cmd/crane@v0.22.1 push bin/minipipe-image.tar REGISTRY/minipipe:TAG
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"
cd "$DEPLOY_DIR/.."
out=bin
VERSION=${VERSION:-$(git describe --always --dirty 2>/dev/null || echo dev)}
tag="minipipe:$VERSION"
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --tag) tag=$2; shift 2 ;;
    *) die "unknown argument $1" ;;
  esac
done
# base-files gives /etc/os-release, by which image scanners know the distribution of the packages' records.
PACKAGES="base-files libc6 libgcc-s1 libstdc++6 ca-certificates tzdata netbase"
command -v dpkg-deb >/dev/null || die "dpkg-deb is missing: the image's base is made of Debian packages"
# shellcheck disable=SC1091
release=$(. /etc/os-release && echo "${ID}-${VERSION_CODENAME:-$VERSION_ID}")
debs="$MINIPIPE_CACHE/image/$release-$(echo "$PACKAGES" | sha256sum | cut -c1-8)"

fetch_debs() {
  # Fetched again after a week, for the release's security updates (glibc, the CA bundle).
  [ -f "$debs/.complete" ] && [ -z "$(find "$debs/.complete" -mtime +7)" ] && return 0
  rm -rf "$debs.tmp" && mkdir -p "$debs.tmp"
  log "downloading Debian's $PACKAGES for the image's base ($release)"
  if ! (cd "$debs.tmp" && apt-get download -q -o APT::Sandbox::User=root $PACKAGES >&2); then
    # No package lists yet on this machine: read them, then try again.
    local sudo=
    [ "$(id -u)" = 0 ] || sudo="sudo -n"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 || die "apt-get update failed (root or sudo is needed once)"
    (cd "$debs.tmp" && apt-get download -q -o APT::Sandbox::User=root $PACKAGES >&2) || die "apt-get download $PACKAGES failed"
  fi
  touch "$debs.tmp/.complete"
  rm -rf "$debs" && mv "$debs.tmp" "$debs"
}
with_lock image-debs fetch_debs

mkdir -p "$out"
log "building minipipe $VERSION for the image"
CGO_ENABLED=1 go build -trimpath -ldflags "-s -w -X github.com/minipipe/minipipe/topology.Version=$VERSION" -o "$out/minipipe-image-bin" ./cmd/minipipe
epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
go run ./deploy/image --binary "$out/minipipe-image-bin" --debs "$debs" --layout "$out/image" --tar "$out/minipipe-image.tar" \
  --tag "$tag" --version "$VERSION" --epoch "$epoch"
rm -f "$out/minipipe-image-bin"
log "OCI layout in $out/image, tarball $out/minipipe-image.tar"
