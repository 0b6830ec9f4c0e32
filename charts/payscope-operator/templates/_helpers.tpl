{{/* Names, labels and shared fragments of the payscope-operator chart. */}}

{{- define "payscope-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: <release>-<chart>, or the release name alone when it contains the chart name. */}}
{{- define "payscope-operator.fullname" -}}
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

{{- define "payscope-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "payscope-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "payscope-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "payscope-operator.labels" -}}
helm.sh/chart: {{ include "payscope-operator.chart" . }}
{{ include "payscope-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: payscope
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "payscope-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "payscope-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "payscope-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
RBAC rules on the namespaced resources, shared by the ClusterRole (cluster-wide mode)
and by the Role of each watched namespace (namespaced mode). Each verb is one the
operator's code sends; see the comments and tests/unit/test_rbac.py.
*/}}
{{- define "payscope-operator.namespacedRules" -}}
# kopf lists and watches PayScopeDeployments and merge/JSON-patches their metadata:
# payscope.io/* annotations (progress, diff-base) and, for deletionPolicy Delete only,
# the payscope.io/finalizer finalizer. kopf never GETs a single object.
- apiGroups: ["payscope.io"]
  resources: ["payscopedeployments"]
  verbs: ["list", "watch", "patch"]
# kube.gateway.patch_status: a merge patch of the status subresource guarded by resourceVersion;
# kube.gateway.read_status: after a 409, re-read the status that the write conflicted with.
- apiGroups: ["payscope.io"]
  resources: ["payscopedeployments/status"]
  verbs: ["get", "patch"]
# kube.gateway.read_secret: referenced Secrets, read by name (never listed or watched).
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
# kube.gateway.read_deployment: the PayScope workloads named in spec.workloads.
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get"]
# kube.gateway.list_disruption_budgets: the namespace's PodDisruptionBudgets, listed (never read one by
# one, never watched) once a pass to find the one whose selector covers the api's pods (A.workloads.api_pdb).
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["list"]
# kube.gateway.list_network_policies: the namespace's NetworkPolicies, listed once a pass to find those
# whose podSelector covers each PayScope Deployment's pods (G.workloads.network_policy).
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: ["list"]
# kube.gateway.list_pods: the pods of a spec.workloads Deployment, listed by its label selector
# (readiness and restart counts; never watched, never a single pod by name).
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list"]
# kube.gateway.read_pod_log: the last lines of those pods' containers (log format and level).
- apiGroups: [""]
  resources: ["pods/log"]
  verbs: ["get"]
# kube.gateway.post_event and kopf's poster both POST core/v1 Events (never events.k8s.io).
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end }}

{{/*
kopf's peering: it lists and watches the peering objects (no field selector, so no
resourceNames), and patches its own entry into the status of the one named peering.name.
Argument: (list $ "clusterkopfpeerings"|"kopfpeerings").
*/}}
{{- define "payscope-operator.peeringRules" -}}
{{- $root := index . 0 }}
{{- $resource := index . 1 }}
- apiGroups: ["kopf.dev"]
  resources: [{{ $resource | quote }}]
  verbs: ["list", "watch"]
- apiGroups: ["kopf.dev"]
  resources: [{{ $resource | quote }}]
  resourceNames: [{{ $root.Values.peering.name | quote }}]
  verbs: ["patch"]
{{- end }}
