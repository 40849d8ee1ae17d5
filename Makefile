# rolloutctl: the two first-screen commands, and a few shortcuts for development.
.PHONY: demo test test-fast setup lint crds manifests lock control-plane

demo:            ## Set everything up and run the sandbox rollout stories on this machine
	scripts/demo

test:            ## The whole test suite, as CI runs it
	scripts/test

test-fast:       ## Everything but the slow end-to-end tests
	scripts/test -m "not slow"

setup:           ## Install Python deps, Debian's prometheus and build the control plane
	scripts/setup

lint:
	.venv/bin/ruff check controller tests bench && .venv/bin/mypy controller tests/harness && .venv/bin/lint-imports

crds:            ## Regenerate manifests/crds (and the chart's copy) from the API models
	.venv/bin/rolloutctl crds --output-dir manifests/crds
	.venv/bin/rolloutctl crds --output-dir helm/rolloutctl/crds

manifests:       ## Render manifests/rolloutctl.yaml from the chart (default values)
	manifests/generate.sh

lock:            ## Regenerate requirements.lock and requirements-build.lock (hashes) from pyproject.toml
	scripts/lock

control-plane:   ## Build kube-apiserver, etcd, kwok, helm... into .k8s-bin
	tools/build-control-plane.sh
