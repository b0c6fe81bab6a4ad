{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "lopper.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of the release's objects: the release name when it already contains the chart
name (a release named `lopper` gives `lopper`), else `<release>-lopper`.
*/}}
{{- define "lopper.fullname" -}}
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

{{- define "lopper.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "lopper.selectorLabels" -}}
app.kubernetes.io/name: {{ include "lopper.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "lopper.labels" -}}
helm.sh/chart: {{ include "lopper.chart" . }}
{{ include "lopper.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: lopper
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "lopper.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "lopper.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "lopper.leaseName" -}}
{{- default (printf "%s-controller" (include "lopper.fullname" .)) .Values.leaderElection.leaseName }}
{{- end }}

{{- define "lopper.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The operator's permissions on the namespaces it watches: exactly what the reconcilers, the
metric sources and the push endpoint use. No wildcards. Rendered into one ClusterRole (all
namespaces) or into one Role per watched namespace. Keep config/rbac/role.yaml in step.
*/}}
{{- define "lopper.workloadRules" -}}
# Studies: watched; status written with server-side apply.
- apiGroups: ["lopper.dev"]
  resources: ["studies"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["lopper.dev"]
  resources: ["studies/status"]
  verbs: ["get", "patch", "update"]
# Trials: created under deterministic names by the Study reconciler, watched, status written.
- apiGroups: ["lopper.dev"]
  resources: ["trials"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
- apiGroups: ["lopper.dev"]
  resources: ["trials/status"]
  verbs: ["get", "patch", "update"]
# ownerReferences with blockOwnerDeletion (Trial -> Study, Job/Secret -> Trial) need update on the
# owner's finalizers where the OwnerReferencesPermissionEnforcement admission plugin is enabled.
- apiGroups: ["lopper.dev"]
  resources: ["studies/finalizers", "trials/finalizers"]
  verbs: ["update"]
# Trial Jobs: created from the template, watched, deleted (background propagation) on prune.
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "list", "watch", "create", "delete"]
# Trial pods: phase and failure reason; the `logs` metric source follows the trainer's log.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["pods/log"]
  verbs: ["get"]
# Push-endpoint tokens: one Secret per Trial (named after it, owned by it) is created; `get`
# reads it back after a restart and reads a Prometheus auth Secret a Study references.
# No list/watch: the operator cannot enumerate Secrets. See docs/install.md, "RBAC".
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "create"]
# Events (prune decisions, study phase changes), both APIs.
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}
