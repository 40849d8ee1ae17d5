#!/usr/bin/env bash
# Build the local Kubernetes control plane used by the tests, from Go modules only:
# kube-apiserver, kube-controller-manager, kube-scheduler, kubectl (k8s.io/kubernetes),
# etcd 3.6, kwok and helm, plus the Gateway API HTTPRoute and Istio VirtualService CRDs.
#
# Versions are pinned by the go.mod/go.sum files under tools/ and by the variables below.
# Output goes to $ROLLOUTCTL_BIN_DIR (default: <repo>/.k8s-bin, git-ignored). A stamp file
# records what was built; when it matches, the script exits in seconds.
#
# Usage: tools/build-control-plane.sh [--force]
set -euo pipefail

TOOLS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$TOOLS_DIR/.." && pwd)"
BIN_DIR="${ROLLOUTCTL_BIN_DIR:-$REPO_DIR/.k8s-bin}"

K8S_VERSION="v1.34.4"
ETCD_VERSION="v3.6.16"
KWOK_VERSION="v0.7.0"
HELM_VERSION="v3.21.4"
GATEWAY_API_VERSION="v1.6.1"
ISTIO_API_VERSION="v1.30.8"

# Bump when the build steps below change what is built (a change to logging or comments
# must not force a rebuild of every binary).
RECIPE=2

BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubectl etcd kwok helm)

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

log() { printf '[build-control-plane] %s\n' "$*"; }

export GOTOOLCHAIN=local GOWORK=off CGO_ENABLED=0
export GOFLAGS="-mod=readonly -buildvcs=false"

mkdir -p "$BIN_DIR"

# One build at a time per output folder (the tests and CI may call this concurrently).
exec 9>"$BIN_DIR/.lock"
if ! flock -n 9; then
    log "another build holds $BIN_DIR/.lock; waiting for it"
    flock 9
fi

stamp_contents() {
    echo "k8s=$K8S_VERSION etcd=$ETCD_VERSION kwok=$KWOK_VERSION helm=$HELM_VERSION"
    echo "gateway-api=$GATEWAY_API_VERSION istio-api=$ISTIO_API_VERSION"
    echo "go=$(go env GOVERSION) $(go env GOOS)/$(go env GOARCH)"
    echo "recipe=$RECIPE"
    (cd "$TOOLS_DIR" && sha256sum ./*/go.mod ./*/go.sum)
}

STAMP="$BIN_DIR/STAMP"
WANT_STAMP="$(stamp_contents)"

all_present() {
    local b
    for b in "${BINARIES[@]}"; do
        [[ -x "$BIN_DIR/$b" ]] || return 1
    done
    [[ -s "$BIN_DIR/crds/gateway.networking.k8s.io_httproutes.yaml" ]] || return 1
    [[ -s "$BIN_DIR/crds/virtualservices.networking.istio.io.yaml" ]] || return 1
}

if [[ "$FORCE" == 0 && -f "$STAMP" ]] && [[ "$(cat "$STAMP")" == "$WANT_STAMP" ]] && all_present; then
    log "up to date in $BIN_DIR (k8s $K8S_VERSION, etcd $ETCD_VERSION, kwok $KWOK_VERSION, helm $HELM_VERSION)"
    exit 0
fi
rm -f "$STAMP"

START=$SECONDS

# The Go tool's own output (hundreds of "go: downloading" lines on a cold cache) goes to a
# log; the console gets one line per stage, and the log's tail when a stage fails.
BUILD_LOG="$BIN_DIR/build.log"
: >"$BUILD_LOG"
log "the Go tool's output goes to $BUILD_LOG"
quiet() { # command... : run it with its output in the build log; show the tail on failure
    if ! "$@" >>"$BUILD_LOG" 2>&1; then
        log "failed: $*" >&2
        tail -n 40 "$BUILD_LOG" >&2
        exit 1
    fi
}

# CRDs of the traffic providers, taken from the Go module cache.
module_dir() { # module@version -> directory in the module cache
    local tmp
    tmp="$(mktemp -d)"
    (cd "$tmp" && GOFLAGS=-buildvcs=false go mod download -json "$1" 2>>"$BUILD_LOG") |
        sed -n 's/^\t"Dir": "\(.*\)",$/\1/p'
    rmdir "$tmp"
}
mkdir -p "$BIN_DIR/crds"
gw_dir="$(module_dir "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION")"
istio_dir="$(module_dir "istio.io/api@$ISTIO_API_VERSION")"
log "gateway-api $GATEWAY_API_VERSION module: $gw_dir"
log "istio.io/api $ISTIO_API_VERSION module: $istio_dir"
install -m 0644 "$gw_dir/config/crd/standard/gateway.networking.k8s.io_httproutes.yaml" \
    "$BIN_DIR/crds/gateway.networking.k8s.io_httproutes.yaml"
# The Istio file holds every Istio CRD as one multi-document YAML: keep the VirtualService one.
awk '
    function flush() { if (doc ~ /\n  name: virtualservices\.networking\.istio\.io\n/) printf "%s", doc; doc = "" }
    /^---[ \t]*$/ { flush(); next }
    { doc = doc $0 "\n" }
    END { flush() }
' "$istio_dir/kubernetes/customresourcedefinitions.gen.yaml" \
    >"$BIN_DIR/crds/virtualservices.networking.istio.io.yaml"
if ! grep -q '^kind: CustomResourceDefinition' "$BIN_DIR/crds/virtualservices.networking.istio.io.yaml"; then
    log "could not find the VirtualService CRD in $istio_dir/kubernetes/customresourcedefinitions.gen.yaml" >&2
    exit 1
fi

minor="${K8S_VERSION#v1.}"
minor="${minor%%.*}"
K8S_LDFLAGS="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    K8S_LDFLAGS+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    K8S_LDFLAGS+=" -X $pkg.gitTreeState=clean"
done

# go build -o DIR/ with several packages writes one binary per main package.
build() { # module-dir ldflags package...
    local dir="$1" ldflags="$2"
    shift 2
    cd "$TOOLS_DIR/$dir" && quiet go build -p 2 -trimpath -ldflags "$ldflags" -o "$BIN_DIR/" "$@"
    cd "$REPO_DIR"
}

log "building kube-apiserver, kube-controller-manager, kube-scheduler, kubectl $K8S_VERSION" \
    "(cold build takes 15-30 min on 2 cores; warm about a minute)"
t=$SECONDS
build k8s "$K8S_LDFLAGS" \
    k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler \
    k8s.io/kubernetes/cmd/kubectl
log "kubernetes binaries built in $((SECONDS - t)) s"

log "building etcd $ETCD_VERSION (cold: a few minutes)"
t=$SECONDS
(cd "$TOOLS_DIR/etcd" && quiet go build -p 2 -trimpath -ldflags "-s -w" -o "$BIN_DIR/etcd" go.etcd.io/etcd/server/v3)
log "etcd built in $((SECONDS - t)) s"

log "building kwok $KWOK_VERSION (cold: a few minutes)"
t=$SECONDS
build kwok "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v}" sigs.k8s.io/kwok/cmd/kwok
log "kwok built in $((SECONDS - t)) s"

log "building helm $HELM_VERSION (cold: a few minutes)"
t=$SECONDS
HELM_LDFLAGS="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
HELM_LDFLAGS+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
HELM_LDFLAGS+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1"
HELM_LDFLAGS+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$minor"
HELM_LDFLAGS+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1"
HELM_LDFLAGS+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$minor"
build helm "$HELM_LDFLAGS" helm.sh/helm/v3/cmd/helm
log "helm built in $((SECONDS - t)) s"

log "versions:"
"$BIN_DIR/kube-apiserver" --version | sed 's/^/  kube-apiserver: /'
"$BIN_DIR/kubectl" version --client | sed -n 1p | sed 's/^/  kubectl: /'
"$BIN_DIR/etcd" --version | sed -n 1p | sed 's/^/  /'
"$BIN_DIR/kwok" --version | sed 's/^/  /'
"$BIN_DIR/helm" version --short | sed 's/^/  helm: /'

printf '%s\n' "$WANT_STAMP" >"$STAMP"
log "done in $((SECONDS - START)) s; binaries in $BIN_DIR"
