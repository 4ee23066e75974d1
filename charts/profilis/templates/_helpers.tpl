{{/*
Names, labels and small computed values shared by every template of the chart.
*/}}

{{/* The chart name, overridable with nameOverride. */}}
{{- define "profilis.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The base name of every object: fullnameOverride, else the release name when it already
contains the chart name ("profilis"), else "<release>-<chart>". 63 characters at most,
the DNS label limit that Service names obey.
*/}}
{{- define "profilis.fullname" -}}
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

{{/* "profilis-2.0.0-dev.0", for the helm.sh/chart label ("+" is not allowed in labels). */}}
{{- define "profilis.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "profilis.labels" -}}
helm.sh/chart: {{ include "profilis.chart" . }}
app.kubernetes.io/name: {{ include "profilis.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: profilis
{{- end }}

{{/* Labels of the operator's own objects (ServiceAccount, Deployment, Service, PDB). */}}
{{- define "profilis.operatorLabels" -}}
{{ include "profilis.labels" . }}
app.kubernetes.io/component: operator
{{- end }}

{{/* The labels that select the operator's pods (Deployment, Service, PDB, ServiceMonitor). */}}
{{- define "profilis.selectorLabels" -}}
app.kubernetes.io/name: {{ include "profilis.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/*
The label that keeps the chart's own pods (operator, helm test) away from the webhook: the
MutatingWebhookConfiguration's objectSelector requires it to be absent. A label, because an
objectSelector cannot read annotations; its own key, because "name=profilis AND
component=operator" cannot be negated with matchExpressions (they are ANDed).
*/}}
{{- define "profilis.controlPlaneLabel" -}}
profilis.io/control-plane: {{ include "profilis.fullname" . }}
{{- end }}

{{- define "profilis.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "profilis.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The one image of the chart: operator, sidecar and agent init container. */}}
{{- define "profilis.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The image injected into pods (sidecar, agent installer): the chart's, unless set. */}}
{{- define "profilis.injectionImage" -}}
{{- default (include "profilis.image" .) .Values.injection.sidecar.image }}
{{- end }}

{{- define "profilis.injectionPullPolicy" -}}
{{- default .Values.image.pullPolicy .Values.injection.sidecar.imagePullPolicy }}
{{- end }}

{{/* The Service in front of the operator: the webhook (443) and its metrics (8080). */}}
{{- define "profilis.serviceName" -}}
{{- include "profilis.fullname" . }}
{{- end }}

{{- define "profilis.webhookName" -}}
{{- printf "%s.profilis.io" (include "profilis.fullname" .) }}
{{- end }}

{{/* The Secret with the webhook's serving certificate (helm and certManager modes). */}}
{{- define "profilis.webhookSecretName" -}}
{{- printf "%s-webhook-tls" (include "profilis.fullname" .) }}
{{- end }}

{{- define "profilis.certificateName" -}}
{{- printf "%s-webhook" (include "profilis.fullname" .) }}
{{- end }}

{{/* The names the API server may use to reach the webhook Service; all go in the cert. */}}
{{- define "profilis.webhookDNSNames" -}}
{{- $svc := include "profilis.serviceName" . }}
{{- $ns := .Release.Namespace }}
{{- list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.%s" $svc $ns .Values.clusterDomain) | toJson }}
{{- end }}

{{/* The host of webhook.url (no port, no IPv6 brackets); empty when the Service is called. */}}
{{- define "profilis.webhookURLHost" -}}
{{- with .Values.webhook.url }}{{ (urlParse .).hostname }}{{ end }}
{{- end }}

{{/*
Subject alternative names of the webhook certificate, as JSON {"dnsNames": [...],
"ipAddresses": [...]}: the Service's names, and the host of webhook.url (an IP SAN when it
is an IP address: the API server checks an IP against IP SANs only).
*/}}
{{- define "profilis.webhookSANs" -}}
{{- $dnsNames := include "profilis.webhookDNSNames" . | fromJsonArray }}
{{- $ipAddresses := list }}
{{- with include "profilis.webhookURLHost" . }}
{{- if or (regexMatch "^[0-9]{1,3}(\\.[0-9]{1,3}){3}$" .) (contains ":" .) }}
{{- $ipAddresses = append $ipAddresses . }}
{{- else if not (has . $dnsNames) }}
{{- $dnsNames = append $dnsNames . }}
{{- end }}
{{- end }}
{{- dict "dnsNames" $dnsNames "ipAddresses" $ipAddresses | toJson }}
{{- end }}

{{/*
Labels added to every monitoring object (kube-prometheus-stack selects PodMonitors,
ServiceMonitors and PrometheusRules by its `release` label).
*/}}
{{- define "profilis.monitoringLabels" -}}
{{ include "profilis.labels" . }}
{{- with .Values.monitoring.additionalLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The securityContext of every container the chart runs (operator, helm test). */}}
{{- define "profilis.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "profilis.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
fsGroup: {{ .Values.securityContext.runAsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end }}
