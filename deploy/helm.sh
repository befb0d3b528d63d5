#!/usr/bin/env bash
# Helm, pinned, built once from the Go module proxy into $MINIPIPE_CACHE/helm/<version>/helm (no download site
# needed). `deploy/helm.sh ARGS…` runs it; `deploy/helm.sh --path` prints its path.
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"
HELM_VERSION=v3.22.0
bin="$MINIPIPE_CACHE/helm/$HELM_VERSION/helm"
build_helm() {
  [ -x "$bin" ] && return 0
  log "building helm $HELM_VERSION from the Go module proxy (once)"
  GOBIN="$(dirname "$bin")" go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" || die "go install helm.sh/helm/v3/cmd/helm@$HELM_VERSION failed"
}
[ -x "$bin" ] || with_lock helm build_helm
if [ "${1:-}" = --path ]; then echo "$bin"; exit 0; fi
exec "$bin" "$@"
