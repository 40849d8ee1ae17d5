#!/usr/bin/env bash
# Build the peers that bench/peers measures rolloutctl against, from Go modules only:
# Argo Rollouts' controller and Flagger, plus their CRDs (taken from the module cache).
# Never run in CI: `python -m bench.peers` calls this on demand.
#
# Versions are pinned by tools/peers/*/go.mod (with the replace directives the peers' own
# go.mod files carry) and by the variables below. Output goes to $ROLLOUTCTL_BIN_DIR/peers
# (default: <repo>/.k8s-bin/peers, git-ignored). A stamp file records what was built; when
# it matches, the script exits in seconds.
#
# Usage: tools/build-peers.sh [--force]
set -euo pipefail

TOOLS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$TOOLS_DIR/.." && pwd)"
BIN_DIR="${ROLLOUTCTL_BIN_DIR:-$REPO_DIR/.k8s-bin}/peers"

# v1.9.3 and the 1.10 line declare `go 1.26.10`, newer than the local Go 1.26.8
# (GOTOOLCHAIN=local): v1.9.2 is the newest release that builds here.
ARGO_ROLLOUTS_VERSION="v1.9.2"
# The newest version the Go module proxy serves.
FLAGGER_VERSION="v1.36.1"

RECIPE=1

FORCE=0
for arg in "$@"; do
    case "$arg" in
        --force) FORCE=1 ;;
        -h | --help)
            sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "unknown argument: $arg" >&2
            exit 2
            ;;
    esac
done

log() { printf '[build-peers] %s\n' "$*"; }

export GOTOOLCHAIN=local GOWORK=off CGO_ENABLED=0
export GOFLAGS="-mod=readonly -buildvcs=false"
# The machine is shared: builds run at the lowest priority, one package at a time unless
# the caller says otherwise.
GO_PARALLEL="${ROLLOUTCTL_GO_PARALLEL:-1}"

mkdir -p "$BIN_DIR"
exec 9>"$BIN_DIR/.lock"
if ! flock -n 9; then
    log "another build holds $BIN_DIR/.lock; waiting for it"
    flock 9
fi

stamp_contents() {
    echo "argo-rollouts=$ARGO_ROLLOUTS_VERSION flagger=$FLAGGER_VERSION"
    echo "go=$(go env GOVERSION) $(go env GOOS)/$(go env GOARCH)"
    echo "recipe=$RECIPE"
    (cd "$TOOLS_DIR/peers" && sha256sum ./*/go.mod ./*/go.sum)
}

STAMP="$BIN_DIR/STAMP"
WANT_STAMP="$(stamp_contents)"

all_present() {
    [[ -x "$BIN_DIR/rollouts-controller" && -x "$BIN_DIR/flagger" ]] || return 1
    [[ -s "$BIN_DIR/crds/argo-rollouts.yaml" && -s "$BIN_DIR/crds/flagger.yaml" ]] || return 1
}

if [[ "$FORCE" == 0 && -f "$STAMP" ]] && [[ "$(cat "$STAMP")" == "$WANT_STAMP" ]] && all_present; then
    log "up to date in $BIN_DIR (argo-rollouts $ARGO_ROLLOUTS_VERSION, flagger $FLAGGER_VERSION)"
    exit 0
fi
rm -f "$STAMP"
START=$SECONDS

BUILD_LOG="$BIN_DIR/build.log"
: >"$BUILD_LOG"
log "the Go tool's output goes to $BUILD_LOG"
quiet() {
    if ! "$@" >>"$BUILD_LOG" 2>&1; then
        log "failed: $*" >&2
        tail -n 40 "$BUILD_LOG" >&2
        exit 1
    fi
}

module_dir() { # module@version -> directory in the module cache
    local tmp
    tmp="$(mktemp -d)"
    (cd "$tmp" && GOFLAGS=-buildvcs=false go mod download -json "$1" 2>>"$BUILD_LOG") |
        sed -n 's/^\t"Dir": "\(.*\)",$/\1/p'
    rmdir "$tmp"
}

mkdir -p "$BIN_DIR/crds"
argo_dir="$(module_dir "github.com/argoproj/argo-rollouts@$ARGO_ROLLOUTS_VERSION")"
flagger_dir="$(module_dir "github.com/fluxcd/flagger@$FLAGGER_VERSION")"
[[ -d "$argo_dir" && -d "$flagger_dir" ]] || {
    log "could not download the peers' modules (see $BUILD_LOG)" >&2
    exit 1
}
log "CRDs from $argo_dir/manifests/crds and $flagger_dir/artifacts/flagger/crd.yaml"
{
    for f in rollout analysis-template cluster-analysis-template analysis-run experiment; do
        echo "---"
        cat "$argo_dir/manifests/crds/$f-crd.yaml"
    done
} >"$BIN_DIR/crds/argo-rollouts.yaml"
install -m 0644 "$flagger_dir/artifacts/flagger/crd.yaml" "$BIN_DIR/crds/flagger.yaml"

build() { # module-dir output ldflags package
    (cd "$TOOLS_DIR/peers/$1" &&
        quiet nice -n 19 go build -p "$GO_PARALLEL" -trimpath -ldflags "$3" -o "$BIN_DIR/$2" "$4")
}

log "building Argo Rollouts $ARGO_ROLLOUTS_VERSION (cold: 10-30 min on 2 cores)"
t=$SECONDS
ARGO_LDFLAGS="-s -w -X github.com/argoproj/argo-rollouts/utils/version.version=${ARGO_ROLLOUTS_VERSION#v}"
ARGO_LDFLAGS+=" -X github.com/argoproj/argo-rollouts/utils/version.gitTag=$ARGO_ROLLOUTS_VERSION"
ARGO_LDFLAGS+=" -X github.com/argoproj/argo-rollouts/utils/version.gitTreeState=clean"
build argo-rollouts rollouts-controller "$ARGO_LDFLAGS" github.com/argoproj/argo-rollouts/cmd/rollouts-controller
log "rollouts-controller built in $((SECONDS - t)) s"

log "building Flagger $FLAGGER_VERSION (cold: 5-15 min on 2 cores)"
t=$SECONDS
build flagger flagger "-s -w" github.com/fluxcd/flagger/cmd/flagger
log "flagger built in $((SECONDS - t)) s"

printf '%s\n' "$WANT_STAMP" >"$STAMP"
log "done in $((SECONDS - START)) s; binaries in $BIN_DIR"
