{{/*
How the chart talks to profilis-operator (operator/profilis_operator/cli.py): flags for
ports, TLS and names; environment for what the CLI reads from it (the image, the defaults
file, excluded namespaces, the sidecar mode). Kept in one file so that the operator's
interface is matched in one place.
*/}}

{{- define "profilis.defaultsDir" -}}/etc/profilis/defaults{{- end }}

{{/* Flags of profilis-operator. Call with (dict "root" $ "tlsDir" "/path"). */}}
{{- define "profilis.operatorArgs" -}}
{{- $root := .root }}
- --log-level={{ $root.Values.operator.logLevel }}
- --webhook-port=9443
- --health-port=8080
{{- if eq $root.Values.certificates.mode "selfSigned" }}
- --self-signed
# The names its certificate must carry, and the configuration whose caBundle it keeps set.
- --webhook-service={{ include "profilis.serviceName" $root }}
- --webhook-config-name={{ include "profilis.webhookName" $root }}
{{- if ne $root.Values.clusterDomain "cluster.local" }}
- --extra-hostname={{ printf "%s.%s.svc.%s" (include "profilis.serviceName" $root) $root.Release.Namespace $root.Values.clusterDomain }}
{{- end }}
{{- with include "profilis.webhookURLHost" $root }}
# The host of webhook.url (an IP address becomes an IP SAN).
- --extra-hostname={{ . }}
{{- end }}
{{- else }}
- --tls-cert-file={{ .tlsDir }}/tls.crt
- --tls-key-file={{ .tlsDir }}/tls.key
{{- end }}
{{- end }}

{{/* Environment of the operator container. */}}
{{- define "profilis.operatorEnv" -}}
# The operator's namespace: excluded from injection, and the Service's in its certificate.
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
# The image injected pods run (sidecar and agent installer).
- name: PROFILIS_OPERATOR_IMAGE
  value: {{ include "profilis.injectionImage" . | quote }}
# A file with the injection defaults (a ProfilisConfig spec), from the defaults ConfigMap.
- name: PROFILIS_OPERATOR_DEFAULTS
  value: {{ printf "%s/defaults.yaml" (include "profilis.defaultsDir" .) | quote }}
# Besides kube-system and its own namespace, which the operator always skips (as the
# webhook's namespaceSelector does: the two lists are the same).
- name: PROFILIS_OPERATOR_EXCLUDED_NAMESPACES
  value: {{ join "," .Values.webhook.excludedNamespaces | quote }}
- name: PROFILIS_OPERATOR_NATIVE_SIDECARS
  value: {{ .Values.operator.nativeSidecars | quote }}
{{- end }}

{{/*
values.injection as the operator's defaults file: the image travels in PROFILIS_OPERATOR_IMAGE,
an empty pull policy means the chart's, and an empty OTLP endpoint or dashboard Secret name
is left out (the operator reads absent, not "", as "none").
*/}}
{{- define "profilis.injectionDefaults" -}}
{{- $defaults := deepCopy .Values.injection }}
{{- $_ := unset $defaults.sidecar "image" }}
{{- $_ = set $defaults.sidecar "imagePullPolicy" (include "profilis.injectionPullPolicy" .) }}
{{- if not $defaults.exporters.otlpEndpoint }}
{{- $_ = unset $defaults.exporters "otlpEndpoint" }}
{{- end }}
{{- if not $defaults.dashboard.tokenSecretRef.name }}
{{- $_ = unset $defaults.dashboard "tokenSecretRef" }}
{{- end }}
{{- toYaml $defaults }}
{{- end }}
