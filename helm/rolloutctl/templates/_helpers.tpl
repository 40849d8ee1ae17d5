{{/* Names, labels and the controller's RBAC rules. */}}

{{- define "rolloutctl.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "rolloutctl.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "rolloutctl.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "rolloutctl.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "rolloutctl.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rolloutctl.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "rolloutctl.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "rolloutctl.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: controller
app.kubernetes.io/part-of: rolloutctl
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "rolloutctl.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
What the controller does in a watched namespace, and nothing more (see
controller/adapters: informers, status writes, routers, Workloads, Events, Secrets).
*/}}
{{- define "rolloutctl.rules" -}}
# RolloutPlans and SLOPolicies: informers (list, watch) and fresh reads (get)
- apiGroups: ["rolloutctl.dev"]
  resources: ["rolloutplans", "slopolicies"]
  verbs: ["get", "list", "watch"]
# their status: the reconcilers' whole-status writes (update), delivery state (patch)
- apiGroups: ["rolloutctl.dev"]
  resources: ["rolloutplans/status", "slopolicies/status"]
  verbs: ["update", "patch"]
# the stable and canary Deployments: informer, fresh reads, promotion (a JSON patch of the
# stable pod template) and the replica router's weight annotation
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "patch"]
# scaling the canary
- apiGroups: ["apps"]
  resources: ["deployments/scale"]
  verbs: ["patch"]
{{- if .Values.trafficRouters.gatewayAPI }}
# Gateway API router: read the HTTPRoute, patch its backendRef weights
- apiGroups: ["gateway.networking.k8s.io"]
  resources: ["httproutes"]
  verbs: ["get", "patch"]
{{- end }}
{{- if .Values.trafficRouters.istio }}
# Istio router: read the VirtualService, patch its destination weights
- apiGroups: ["networking.istio.io"]
  resources: ["virtualservices"]
  verbs: ["get", "patch"]
{{- end }}
{{- if .Values.trafficRouters.nginx }}
# NGINX router: read the primary Ingress; create, replace and delete the canary Ingress
- apiGroups: ["networking.k8s.io"]
  resources: ["ingresses"]
  verbs: ["get", "create", "update", "delete"]
{{- end }}
# Events on plans and policies
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- with .Values.notifications.secretNames }}
# the Slack, SMTP and incident Secrets named in the chart values, by name only
- apiGroups: [""]
  resources: ["secrets"]
  resourceNames: {{ toJson . }}
  verbs: ["get"]
{{- end }}
{{- end -}}

{{/* The metrics address's host; an IPv6 address in brackets. */}}
{{- define "rolloutctl.bindHost" -}}
{{- $h := .Values.metrics.bindAddress -}}
{{- if and (contains ":" $h) (not (hasPrefix "[" $h)) -}}[{{ $h }}]{{- else -}}{{ $h }}{{- end -}}
{{- end }}
