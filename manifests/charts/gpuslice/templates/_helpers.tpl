{{/* Names, labels and image references shared by the templates. */}}

{{- define "gpuslice.labels" -}}
app.kubernetes.io/name: gpuslice
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | quote }}
{{- end }}

{{/* Selector labels of one component: (dict "root" $ "component" "extender"). */}}
{{- define "gpuslice.selector" -}}
app.kubernetes.io/name: gpuslice
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Every label of one component's objects. */}}
{{- define "gpuslice.componentLabels" -}}
{{ include "gpuslice.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* An image reference: (dict "root" $ "image" .Values.extender.image). */}}
{{- define "gpuslice.image" -}}
{{- $tag := .image.tag | default .root.Chart.AppVersion -}}
{{- if .image.digest -}}
{{ .root.Values.image.registry }}/{{ .image.repository }}@{{ .image.digest }}
{{- else -}}
{{ .root.Values.image.registry }}/{{ .image.repository }}:{{ $tag }}
{{- end -}}
{{- end }}

{{/* The cluster's own kube-scheduler version, vMAJOR.MINOR.PATCH, unless scheduler.image.tag is set. */}}
{{- define "gpuslice.schedulerTag" -}}
{{- if .Values.scheduler.image.tag -}}
{{ .Values.scheduler.image.tag }}
{{- else -}}
{{- $v := semver .Capabilities.KubeVersion.Version -}}
{{ printf "v%d.%d.%d" $v.Major $v.Minor $v.Patch }}
{{- end -}}
{{- end }}

{{/* The extender Service's in-cluster host name. */}}
{{- define "gpuslice.extenderHost" -}}
gpuslice-extender.{{ .Release.Namespace }}.svc
{{- end }}

{{/* The extender's URL as kube-scheduler calls it. */}}
{{- define "gpuslice.extenderURL" -}}
https://{{ include "gpuslice.extenderHost" . }}:{{ .Values.extender.service.port }}/
{{- end }}
