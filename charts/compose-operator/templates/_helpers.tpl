{{/* The chart name, overridable. */}}
{{- define "compose-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's object name; the release name alone when it already names the chart. */}}
{{- define "compose-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "compose-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "compose-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "compose-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "compose-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "compose-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "compose-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "compose-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "compose-operator.webhookServiceName" -}}
{{- printf "%s-webhook" (include "compose-operator.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "compose-operator.webhookConfigurationName" -}}
{{- include "compose-operator.fullname" . }}
{{- end }}

{{- define "compose-operator.metricsServiceName" -}}
{{- printf "%s-metrics" (include "compose-operator.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The settings file: values.settings with the puller and gateway images defaulted to the operator image. */}}
{{- define "compose-operator.settings" -}}
{{- $settings := deepCopy .Values.settings }}
{{- if not $settings.pullerImage }}
{{- $_ := set $settings "pullerImage" (include "compose-operator.image" .) }}
{{- end }}
{{- $gateway := $settings.gateway | default dict }}
{{- if not $gateway.image }}
{{- $_ := set $gateway "image" (include "compose-operator.image" .) }}
{{- end }}
{{- $_ := set $settings "gateway" $gateway }}
{{- toYaml $settings }}
{{- end }}

{{/* settings.sharing.policy; `sharing: never` (the short form) is accepted too. */}}
{{- define "compose-operator.sharingPolicy" -}}
{{- $sharing := .Values.settings.sharing | default dict }}
{{- if kindIs "string" $sharing }}{{ $sharing }}{{ else }}{{ $sharing.policy | default "prefer" }}{{ end }}
{{- end }}

{{/*
RBAC rules, split by scope: "namespaced" rules go into a Role per watched namespace under
rbac.scope=namespace; "cluster" rules are always cluster-wide. Keep them equal to the
manifests' ClusterRole (tests/test_packaging_rbac.py pins both to one list).
*/}}
{{- define "compose-operator.namespacedRules" -}}
# Watch ComposeApps; patch carries kopf's own bookkeeping (finalizer, diff-base annotation).
- apiGroups: [compose-operator.io]
  resources: [composeapps]
  verbs: [get, list, watch, patch]
- apiGroups: [compose-operator.io]
  resources: [composeapps/status]
  verbs: [patch]
# Model Deployments it owns, and the env patch on Deployments that opted in. The watches carry
# only objects labelled with an app, so get reads a name the index cannot answer: whether a
# new object's name is free, a Deployment that opted in but is not bound yet.
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [""]
  resources: [services, persistentvolumeclaims]
  verbs: [get, list, watch, create, patch, delete]
# ConfigMaps: read the Compose text (spec.composeFrom) and project files kept in ConfigMaps
# (spec.files); write only the app's own: the model gateway's routing table, <app>-files and
# <app>-configs (it deletes only ConfigMaps carrying its label and owner reference; RBAC
# cannot scope create to names).
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list, watch, create, patch, delete]
# The model gateway's PodDisruptionBudget, when it runs more than one replica.
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [get, list, watch, create, patch, delete]
# Secrets a Compose file mounts are only checked for existence (get: never listed or
# watched, never written), so a missing one is named in the app's status.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
# Pods (watched) to say at once why a model is not ready.
- apiGroups: [""]
  resources: [pods]
  verbs: [list, watch]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- if .Values.settings.networkPolicies }}
# Offered models' namespaces get a NetworkPolicy admitting only the namespaces of the offer.
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [get, list, watch, create, patch, delete]
{{- end }}
{{- end }}

{{- define "compose-operator.clusterRules" -}}
# kopf's resource discovery.
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [list, watch]
{{- if ne (include "compose-operator.sharingPolicy" .) "never" }}
# Shared models: an offer's namespaceSelector is matched against the app namespace's labels;
# cluster-wide, label changes are watched too (with watchNamespaces only read, never watched).
- apiGroups: [""]
  resources: [namespaces]
  verbs: {{ if eq .Values.rbac.scope "namespace" }}[get]{{ else }}[get, list, watch]{{ end }}
{{- end }}
{{- if .Values.webhook.enabled }}
# The chart's ValidatingWebhookConfiguration, only to patch its own CA bundle into it.
- apiGroups: [admissionregistration.k8s.io]
  resources: [validatingwebhookconfigurations]
  resourceNames: [{{ include "compose-operator.webhookConfigurationName" . }}]
  verbs: [patch]
{{- end }}
{{- end }}
