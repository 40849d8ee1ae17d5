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
controller/adapters: informers, status writes, routers, Workloads, Events, Secrets). The
table of these rules is controller/rbac.py (doctor checks it; tests/unit/test_chart_rbac_rules.py
asserts this renders exactly it): change both together.
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
# why a canary or stable is not ready (ImagePullBackOff, CrashLoopBackOff...): the pods of a
# Deployment, listed by its selector only while it is not ready
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list"]
# HorizontalPodAutoscalers: the controller never writes replicas an HPA owns
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["list"]
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

{{/*
CEL (admission policies): variables for the Secrets an object's spec.notifications names.
For each reference a list of zero or one {field, name} (every level is optional, so every
has() is guarded) and whether the requester may get it (one authorizer check per
variable: a check is expensive, and one expression may make only a few), (a
message may not use the authorizer: rolloutctl.secretValidations names the Secret).
*/}}
{{- define "rolloutctl.notificationSecretVariables" -}}
{{- range $i, $ref := list "slack.tokenSecretRef" "slack.webhookSecretRef" "email.smtp.passwordSecretRef" "incident.routingKeySecretRef" -}}
{{- $path := "object.spec.notifications" -}}
{{- $guards := list (printf "has(%s)" $path) -}}
{{- range $segment := splitList "." $ref -}}
{{- $path = printf "%s.%s" $path $segment -}}
{{- $guards = append $guards (printf "has(%s)" $path) -}}
{{- end -}}
{{- $name := printf "secret%d" $i }}
- name: {{ $name }}
  expression: >-
    {{ join " && " $guards }} ?
    [{'field': 'spec.notifications.{{ $ref }}.name', 'name': string({{ $path }}.name)}] : []
- name: {{ $name }}Readable
  expression: >-
    size(variables.{{ $name }}) == 0 || authorizer.group('').resource('secrets')
    .namespace(request.namespace).name(variables.{{ $name }}[0].name).check('get').allowed()
{{- end }}
{{- end -}}

{{/* CEL: one validation per notification Secret (see notificationSecretVariables). */}}
{{- define "rolloutctl.secretValidations" -}}
{{- $kind := .kind -}}
{{- range $i := until 4 }}
- expression: "variables.secret{{ $i }}Readable"
  reason: Forbidden
  messageExpression: >-
    {{- include "rolloutctl.authorMessage" (dict "kind" $kind "rule" "AuthorMayReadSecret" "verb" "get" "ref" (printf "variables.secret%d[0]" $i) "resource" "'secrets'" "what" "read") | nindent 4 }}
{{- end }}
{{- end -}}

{{/*
CEL: the refusal of an author check: the rule, who, the missing permission (verb, resource,
name, the field naming it) and the fix. REF is a {field, name} (and group, resource) map.
*/}}
{{- define "rolloutctl.authorMessage" -}}
'rule {{ .rule }}: {{ .kind }} ' + request.namespace + '/' + request.name +
' makes the controller {{ .what }} what it names, so its author must be allowed to; ' +
request.userInfo.username + ' may not {{ .verb }} ' + {{ .resource }} + ' "' + {{ .ref }}.name +
'" (' + {{ .ref }}.field + ') in namespace ' + request.namespace + '. Fix: name one you may
{{ .what }}, or ask for a Role granting verb {{ .verb }} on it (check with: kubectl auth can-i
{{ .verb }} ' + {{ .resource }} + '/' + {{ .ref }}.name + ' -n ' + request.namespace + ')'
{{- end -}}

{{/* The metrics address's host; an IPv6 address in brackets. */}}
{{- define "rolloutctl.bindHost" -}}
{{- $h := .Values.metrics.bindAddress -}}
{{- if and (contains ":" $h) (not (hasPrefix "[" $h)) -}}[{{ $h }}]{{- else -}}{{ $h }}{{- end -}}
{{- end }}
