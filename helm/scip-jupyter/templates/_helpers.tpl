{{/* Labels every object of this chart carries. */}}
{{- define "scip-jupyter.labels" -}}
app.kubernetes.io/name: scip-jupyter
app.kubernetes.io/instance: {{ .Release.Name | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service | quote }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | quote }}
{{- end -}}

{{/* A config file: from values (a mapping) or else the chart's files/<name>. */}}
{{- define "scip-jupyter.configFile" -}}
{{- $ctx := index . 0 -}}{{- $value := index . 1 -}}{{- $file := index . 2 -}}
{{- if $value -}}
{{ toYaml $value }}
{{- else -}}
{{ $ctx.Files.Get $file }}
{{- end -}}
{{- end -}}
