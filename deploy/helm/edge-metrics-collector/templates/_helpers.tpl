{{/*
One source for both installs: every object of this chart is read from the kustomize manifests and the
files they generate from (files/ holds symlinks to deploy/kubernetes, scripts/, deploy/vmagent, ...;
`helm package` stores their contents), then changed only where a value says so. With its defaults
(and tests/helm/values/kustomize.yaml for the settings where the chart's defaults differ) the chart
renders what `kubectl kustomize deploy/kubernetes` renders: tests/helm compares them object by object.
*/}}

{{- define "emc.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: edge-metrics-collector
{{- end }}

{{/* The YAML documents of one manifest file, as a list of objects (comment-only documents dropped). */}}
{{- define "emc.documents" -}}
{{- $root := index . 0 -}}
{{- $objects := list -}}
{{- range $doc := regexSplit "(?m)^---\\s*$" ($root.Files.Get (index . 1)) -1 -}}
{{- $obj := fromYaml $doc -}}
{{- if and $obj (hasKey $obj "kind") -}}
{{- $objects = append $objects $obj -}}
{{- end -}}
{{- end -}}
{{- toJson $objects -}}
{{- end }}

{{/* An object of the manifests, placed in the release's namespace with the chart's labels added. */}}
{{- define "emc.adopt" -}}
{{- $root := index . 0 -}}
{{- $obj := index . 1 -}}
{{- $meta := $obj.metadata -}}
{{- $_ := set $meta "namespace" $root.Release.Namespace -}}
{{- $_ := set $meta "labels" (merge (include "emc.labels" $root | fromYaml) ($meta.labels | default dict)) -}}
{{- toJson $obj -}}
{{- end }}

{{/*
The ConfigMaps a kustomization's configMapGenerator makes, from the same files: (root, directory under
files/, extra labels,
string replacements in the files' text). Names carry no hash suffix: the pods that mount them roll on the checksum
annotation of their template instead.
*/}}
{{- define "emc.generated" -}}
{{- $root := index . 0 -}}
{{- $dir := index . 1 -}}
{{- $extraLabels := index . 2 -}}
{{- $replace := index . 3 -}}
{{- $kustomization := $root.Files.Get (printf "files/%s/kustomization.yaml" $dir) | fromYaml -}}
{{- $options := $kustomization.generatorOptions | default dict -}}
{{- range $generator := $kustomization.configMapGenerator }}
{{- $data := dict -}}
{{- range $file := $generator.files -}}
{{- $text := $root.Files.Get (printf "files/%s/%s" $dir $file) -}}
{{- range $from, $to := $replace -}}
{{- $text = replace $from $to $text -}}
{{- end -}}
{{- $_ := set $data (base $file) $text -}}
{{- end -}}
{{- $labels := merge (include "emc.labels" $root | fromYaml) $extraLabels ($options.labels | default dict) -}}
{{- $meta := dict "name" $generator.name "namespace" $root.Release.Namespace "labels" $labels -}}
{{- with $options.annotations }}{{ $_ := set $meta "annotations" . }}{{ end }}
---
{{ toYaml (dict "apiVersion" "v1" "kind" "ConfigMap" "metadata" $meta "data" $data) }}
{{- end }}
{{- end }}

{{/* An image reference: (manifest's "repo:tag", {repository, tag, digest}); an empty value keeps the manifest's. */}}
{{- define "emc.image" -}}
{{- $manifest := index . 0 -}}
{{- $values := index . 1 -}}
{{- $repository := regexReplaceAll ":[^:/]*$" $manifest "" -}}
{{- $tag := trimPrefix (printf "%s:" $repository) $manifest -}}
{{- $repository = $values.repository | default $repository -}}
{{- $tag = $values.tag | default $tag -}}
{{- if $values.digest -}}
{{- printf "%s:%s@%s" $repository $tag $values.digest -}}
{{- else -}}
{{- printf "%s:%s" $repository $tag -}}
{{- end -}}
{{- end }}

{{/* A container's env with some values replaced (name -> value; null removes the variable): (env, overrides). */}}
{{- define "emc.env" -}}
{{- $overrides := index . 1 -}}
{{- $env := list -}}
{{- range $item := index . 0 -}}
{{- if not (hasKey $overrides $item.name) -}}
{{- $env = append $env $item -}}
{{- else if not (kindIs "invalid" (get $overrides $item.name)) -}}
{{- $env = append $env (dict "name" $item.name "value" (get $overrides $item.name | toString)) -}}
{{- end -}}
{{- end -}}
{{- toJson $env -}}
{{- end }}

{{/* The URL the edge vmagents write to: the value, else this release's centre. */}}
{{- define "emc.remoteWriteUrl" -}}
{{- if .Values.remoteWrite.url -}}
{{- .Values.remoteWrite.url -}}
{{- else if .Values.central.enabled -}}
{{- printf "https://central-ingest.%s.svc:8427/api/v1/write" .Release.Namespace -}}
{{- else -}}
{{- fail "remoteWrite.url: set the centre's remote-write URL (https://HOST:PORT/api/v1/write), or central.enabled=true to run the centre in this release" -}}
{{- end -}}
{{- end }}
