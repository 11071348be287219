#!/usr/bin/env bash
# Place each edge node's own credentials (tools/make-certs.sh: nodes/<node>/ca.crt, token, admin-key) in
# that node's /etc/edge-metrics/credentials, through the cluster: for each node a Secret holding only
# its files and a Job pinned to it (nodeName) that installs them (0700 directory, 0600 files) and exits;
# once the Job has completed, the Secret is deleted (each token then lives only on its node and in
# your PKI directory) and the node is labelled, so the DaemonSet (nodeSelector on that label) starts
# there only once its credentials are in place. Nodes that run no sensor script need neither.
#
#   tools/node-credentials.sh [--pki DIR] [--namespace NS] [--image IMAGE] [--label KEY=VALUE]
#                             [--print] NODE...
#
#   --pki DIR        make-certs output (default .run/pki); nodes/<NODE>/ must exist for every NODE
#   --namespace NS   where the Secrets and Jobs run (default monitoring: it allows hostPath)
#   --image IMAGE    an image with bash and coreutils (default: the collector's)
#   --label K=V      the label put on each node once done (default edge-metrics/sensors=true)
#   --print          print the Secrets and Jobs instead of applying them (review, GitOps)
#
# A hundred nodes: every node labelled for sensors, credentials made for all in one make-certs run (its
# auth.yml for vmauth names them all), then placed:
#   nodes=$(kubectl get nodes -l edge-metrics/wants-sensors=true -o jsonpath='{.items[*].metadata.name}')
#   tools/make-certs.sh $(printf -- '--node %s ' $nodes)
#   tools/node-credentials.sh $nodes
set -euo pipefail

pki=.run/pki
namespace=monitoring
image=ghcr.io/edge-metrics/edge-metrics-collector:0.1.0
label=edge-metrics/sensors=true
print=0
nodes=()
usage() { sed -n '9,16p' "$0" >&2; exit 2; }
while (($#)); do
  case $1 in
    --pki) pki=${2:?--pki needs a directory}; shift 2 ;;
    --namespace) namespace=${2:?--namespace needs a name}; shift 2 ;;
    --image) image=${2:?--image needs an image}; shift 2 ;;
    --label) label=${2:?--label needs KEY=VALUE}; shift 2 ;;
    --print) print=1; shift ;;
    -h|--help) usage ;;
    -*) echo "node-credentials: unknown option $1" >&2; usage ;;
    *) nodes+=("$1"); shift ;;
  esac
done
((${#nodes[@]})) || { echo "node-credentials: name at least one node" >&2; usage; }
[[ $label == *=* ]] || { echo "node-credentials: --label wants KEY=VALUE, not '$label'" >&2; exit 2; }
for node in "${nodes[@]}"; do
  [[ $node =~ ^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$ ]] || { echo "node-credentials: bad node name '$node'" >&2; exit 2; }
  for file in ca.crt token admin-key; do
    [[ -s $pki/nodes/$node/$file ]] || {
      echo "node-credentials: $pki/nodes/$node/$file missing: run tools/make-certs.sh --out $pki with --node $node" \
        "(and every other node: its auth.yml lists them all)" >&2
      exit 1
    }
  done
done

# What the Job runs, from the Secret's files (SOURCE) into the node's directory (TARGET): never a partial
# set (copied beside, then renamed one by one), never readable by others.
# shellcheck disable=SC2016  # expanded by the Job's bash, not here
install_script='set -eu
umask 077
install -d -m 0700 "$TARGET"
for f in ca.crt token admin-key; do
  install -m 0600 "$SOURCE/$f" "$TARGET/.$f.new"
  mv -f "$TARGET/.$f.new" "$TARGET/$f"
done
echo "credentials of $NODE_NAME placed in $TARGET"'

b64() { base64 -w0 <"$1"; }

manifests() {  # NODE: its Secret and its Job
  local node=$1 dir=$pki/nodes/$1
  cat <<YAML
---
apiVersion: v1
kind: Secret
metadata:
  name: edge-credentials-$node
  namespace: $namespace
  labels:
    app.kubernetes.io/part-of: edge-metrics-collector
    edge-metrics/credentials-of: $node
type: Opaque
data:
  ca.crt: $(b64 "$dir/ca.crt")
  token: $(b64 "$dir/token")
  admin-key: $(b64 "$dir/admin-key")
---
apiVersion: batch/v1
kind: Job
metadata:
  name: edge-credentials-$node
  namespace: $namespace
  labels:
    app.kubernetes.io/part-of: edge-metrics-collector
    edge-metrics/credentials-of: $node
spec:
  backoffLimit: 3
  ttlSecondsAfterFinished: 3600
  template:
    metadata:
      labels:
        edge-metrics/credentials-of: $node
    spec:
      nodeName: $node
      restartPolicy: OnFailure
      automountServiceAccountToken: false
      enableServiceLinks: false
      tolerations:
        - operator: Exists
      securityContext:
        seccompProfile:
          type: RuntimeDefault
      containers:
        - name: place
          image: $image
          command: ["bash", "-c"]
          args:
            - |
$(printf '%s\n' "$install_script" | sed 's/^/              /')
          env:
            - name: SOURCE
              value: /secret
            - name: TARGET
              value: /host/credentials
            - name: NODE_NAME
              valueFrom:
                fieldRef:
                  fieldPath: spec.nodeName
          # root without any capability: owns the root-created host directory, and nothing more.
          securityContext:
            runAsUser: 0
            readOnlyRootFilesystem: true
            allowPrivilegeEscalation: false
            capabilities:
              drop: ["ALL"]
          resources:
            requests: {cpu: 10m, memory: 16Mi}
            limits: {cpu: 100m, memory: 32Mi}
          volumeMounts:
            - name: secret
              mountPath: /secret
              readOnly: true
            - name: credentials
              mountPath: /host/credentials
      volumes:
        - name: secret
          secret:
            secretName: edge-credentials-$node
            defaultMode: 0400
        - name: credentials
          hostPath:
            path: /etc/edge-metrics/credentials
            type: DirectoryOrCreate
YAML
}

if ((print)); then
  for node in "${nodes[@]}"; do manifests "$node"; done
  exit 0
fi
command -v kubectl >/dev/null 2>&1 || { echo "node-credentials: needs kubectl on PATH (or --print)" >&2; exit 2; }
for node in "${nodes[@]}"; do
  manifests "$node" | kubectl apply -f - >&2
done
failed=()
for node in "${nodes[@]}"; do
  if kubectl -n "$namespace" wait --for=condition=complete --timeout=300s "job/edge-credentials-$node" >&2; then
    kubectl -n "$namespace" delete secret "edge-credentials-$node" >&2
    kubectl label node "$node" "$label" --overwrite >&2
    echo "node-credentials: $node done" >&2
  else
    failed+=("$node")
    echo "node-credentials: $node: the Job did not complete: kubectl -n $namespace logs job/edge-credentials-$node" >&2
  fi
done
((${#failed[@]} == 0)) || { echo "node-credentials: not placed on: ${failed[*]}" >&2; exit 1; }
