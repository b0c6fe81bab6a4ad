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
# Studies: watched (and read by name: warm-start studies, the push endpoint).
- apiGroups: ["lopper.dev"]
  resources: ["studies"]
  verbs: ["get", "list", "watch"]
# Trials: created under deterministic names by the Study reconciler and watched. They are
# never updated or deleted by the operator (ownerReferences let the garbage collector do that).
- apiGroups: ["lopper.dev"]
  resources: ["trials"]
  verbs: ["get", "list", "watch", "create"]
# Curve chunks: sealed points of long learning curves, created once per 250 points of a
# trial (owned by the Trial) and watched; never updated or deleted by the operator.
- apiGroups: ["lopper.dev"]
  resources: ["curvechunks"]
  verbs: ["get", "list", "watch", "create"]
# Status of both, written with server-side apply (PATCH) only.
- apiGroups: ["lopper.dev"]
  resources: ["studies/status", "trials/status"]
  verbs: ["patch"]
# ownerReferences with blockOwnerDeletion (Trial -> Study, Job/Secret -> Trial) need update on the
# owner's finalizers where the OwnerReferencesPermissionEnforcement admission plugin is enabled.
- apiGroups: ["lopper.dev"]
  resources: ["studies/finalizers", "trials/finalizers"]
  verbs: ["update"]
# Trial Jobs: created from the template, watched, deleted (background propagation) on prune.
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "list", "watch", "create", "delete"]
# Multi-node trials: a JobSet or a Kubeflow TrainJob, watched where the cluster serves the kind
# (read by name and polled where not), created, deleted on prune. Kueue needs nothing: it is read back from
# the workload's spec.suspend.
- apiGroups: ["jobset.x-k8s.io"]
  resources: ["jobsets"]
  verbs: ["get", "list", "watch", "create", "delete"]
- apiGroups: ["trainer.kubeflow.org"]
  resources: ["trainjobs"]
  verbs: ["get", "list", "watch", "create", "delete"]
# Trial pods: failure reasons; the `logs` metric source finds the pod and follows its log.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list"]
- apiGroups: [""]
  resources: ["pods/log"]
  verbs: ["get"]
# Push-endpoint tokens: one Secret per Trial (named after it, owned by it) is created; `get`
# checks a presented token and reads a Prometheus auth Secret a Study references.
# No list/watch: the operator cannot enumerate Secrets. See docs/install.md, "RBAC".
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "create"]
# Events (prune decisions) through kube-runtime's Recorder: events.k8s.io/v1 only.
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}

{{/*
The dashboard's rule (values `ui`): a trial page lists its Trial's Events (core/v1, where the
events.k8s.io Events the operator writes are listed too). Read-only.
*/}}
{{- define "lopper.uiRules" -}}
{{- if .Values.ui.enabled -}}
# The dashboard (/ui/): a trial page lists its Trial's Events.
- apiGroups: [""]
  resources: ["events"]
  verbs: ["list"]
{{- end }}
{{- end }}
