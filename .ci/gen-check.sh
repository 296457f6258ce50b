#!/usr/bin/env bash
# Regenerates the service's protobuf and Connect code with pinned tools and
# fails if that changes anything under psi/service/gen. Local plugins only:
# no remote buf plugins, no network beyond the Go module proxy.
set -euo pipefail
cd "$(dirname "$0")/.."

BUF_VERSION=v1.75.0
PROTOC_GEN_GO_VERSION=v1.36.11
PROTOC_GEN_CONNECT_GO_VERSION=v1.21.1

bin="$(go env GOPATH)/bin"
export PATH="$bin:$PATH"
have() { [ -x "$bin/$1" ] && "$bin/$1" --version 2>&1 | grep -q -- "${2#v}"; }
have buf "$BUF_VERSION" || GOFLAGS= go install "github.com/bufbuild/buf/cmd/buf@$BUF_VERSION"
have protoc-gen-go "$PROTOC_GEN_GO_VERSION" || GOFLAGS= go install "google.golang.org/protobuf/cmd/protoc-gen-go@$PROTOC_GEN_GO_VERSION"
have protoc-gen-connect-go "$PROTOC_GEN_CONNECT_GO_VERSION" || GOFLAGS= go install "connectrpc.com/connect/cmd/protoc-gen-connect-go@$PROTOC_GEN_CONNECT_GO_VERSION"

cd psi/service
buf lint
buf generate
cd ../..
if ! git diff --exit-code --stat -- psi/service/gen || [ -n "$(git status --porcelain --untracked-files=all -- psi/service/gen)" ]; then
  echo "buf generate changed psi/service/gen: regenerate with .ci/gen-check.sh and commit the result"
  git status --short -- psi/service/gen
  exit 1
fi
echo "psi/service/gen is current"
