{{/* The chart's name, truncated to Kubernetes' 63 characters. */}}
{{- define "minipipe.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's objects' base name. */}}
{{- define "minipipe.fullname" -}}
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

{{- define "minipipe.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "minipipe.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "minipipe.selectorLabels" -}}
app.kubernetes.io/name: {{ include "minipipe.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* A Service's name: the base name, cut so that "-<api>" still fits in 63 characters. */}}
{{- define "minipipe.serviceName" -}}
{{- $api := index . 1 }}
{{- printf "%s-%s" (include "minipipe.fullname" (index . 0) | trunc (int (sub 62 (len $api))) | trimSuffix "-") $api }}
{{- end }}

{{/* Brokers as KEDA's operator reaches them from its namespace. */}}
{{- define "minipipe.kedaBrokers" -}}
{{- if .Values.keda.bootstrapServers }}
{{- join "," .Values.keda.bootstrapServers }}
{{- else }}
{{- $out := list }}
{{- range (index .Values.config "brokers") }}
{{- $hp := splitList ":" . }}
{{- $host := first $hp }}
{{- if and (not (contains "." $host)) (ne $host "localhost") }}{{ $host = printf "%s.%s.svc" $host $.Release.Namespace }}{{ end }}
{{- $out = append $out (printf "%s:%s" $host (last $hp)) }}
{{- end }}
{{- join "," $out }}
{{- end }}
{{- end }}

{{- define "minipipe.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "minipipe.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "minipipe.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}
{{- end }}
{{- end }}

{{/* The Secret holding the users file (key "users"), unless auth is off. */}}
{{- define "minipipe.usersSecret" -}}
{{- default (printf "%s-users" (include "minipipe.fullname" .)) .Values.auth.existingSecret }}
{{- end }}

{{/* The Secret holding the Kafka SASL password. */}}
{{- define "minipipe.saslSecret" -}}
{{- default (printf "%s-kafka-sasl" (include "minipipe.fullname" .)) .Values.kafka.sasl.existingSecret }}
{{- end }}

{{- define "minipipe.scheme" -}}
{{- if .Values.tls.existingSecret }}HTTPS{{ else }}HTTP{{ end }}
{{- end }}

{{/* Keys of config the chart owns: set from ports, the data volume and the mounted Secrets. */}}
{{- define "minipipe.ownedKeys" -}}
{{- list "config" "rest-addr" "registry-addr" "http-addr" "data-dir" "auth-file" "insecure-no-auth" "tls-cert" "tls-key" "kafka-tls" "kafka-tls-ca" "kafka-tls-cert" "kafka-tls-key" "kafka-tls-server-name" "kafka-sasl-mechanism" "kafka-sasl-username" "kafka-sasl-password-file" "embedded-kafka" | toJson }}
{{- end }}

{{/* minipipe's config file: .Values.config and the keys the chart owns. */}}
{{- define "minipipe.config" -}}
{{- $c := deepCopy .Values.config }}
{{- range $k := (include "minipipe.ownedKeys" . | fromJsonArray) }}
{{- if hasKey $c $k }}{{ fail (printf "config.%s is set by the chart: use ports, auth, tls and kafka in the values" $k) }}{{ end }}
{{- end }}
{{- range $k, $v := $c }}
{{- if and (regexMatch "(?i)(password|secret|token|private|credential)" $k) (not (hasSuffix "-file" $k)) }}{{ fail (printf "config.%s looks like a secret: the config file is a ConfigMap; use a Secret (kafka.sasl, auth, env with secretKeyRef)" $k) }}{{ end }}
{{- if regexMatch "://[^/@\\s]*:[^/@\\s]*@" (toString $v) }}{{ fail (printf "config.%s holds a password in a URL: the config file is a ConfigMap" $k) }}{{ end }}
{{- end }}
{{- $wh := toString (index $c "warehouse") }}
{{- if not (or (hasPrefix "hdfs://" $wh) (hasPrefix "s3://" $wh) (and .Values.allowFileWarehouse (hasPrefix "file:///" $wh))) }}
{{- fail (printf "config.warehouse %q: every pod must share it: hdfs://NAMENODE:PORT/PATH (a file:/// warehouse needs allowFileWarehouse and a volume every pod mounts there)" $wh) }}
{{- end }}
{{- $_ := set $c "rest-addr" (printf "0.0.0.0:%d" (int .Values.ports.rest)) }}
{{- $_ := set $c "registry-addr" (printf "0.0.0.0:%d" (int .Values.ports.registry)) }}
{{- $_ := set $c "http-addr" (printf "0.0.0.0:%d" (int .Values.ports.http)) }}
{{- $_ := set $c "data-dir" "/var/lib/minipipe" }}
{{- if .Values.auth.insecureNoAuth }}
{{- $_ := set $c "insecure-no-auth" true }}
{{- else }}
{{- $_ := set $c "auth-file" "/etc/minipipe/auth/users" }}
{{- end }}
{{- if .Values.tls.existingSecret }}
{{- $_ := set $c "tls-cert" "/etc/minipipe/tls/tls.crt" }}
{{- $_ := set $c "tls-key" "/etc/minipipe/tls/tls.key" }}
{{- end }}
{{- if .Values.kafka.tls.enabled }}
{{- $_ := set $c "kafka-tls" true }}
{{- if .Values.kafka.tls.existingSecret }}
{{- $_ := set $c "kafka-tls-ca" "/etc/minipipe/kafka-tls/ca.crt" }}
{{- if .Values.kafka.tls.clientCert }}
{{- $_ := set $c "kafka-tls-cert" "/etc/minipipe/kafka-tls/tls.crt" }}
{{- $_ := set $c "kafka-tls-key" "/etc/minipipe/kafka-tls/tls.key" }}
{{- end }}
{{- else if .Values.kafka.tls.clientCert }}{{ fail "kafka.tls.clientCert needs kafka.tls.existingSecret" }}
{{- end }}
{{- if .Values.kafka.tls.serverName }}
{{- $_ := set $c "kafka-tls-server-name" .Values.kafka.tls.serverName }}
{{- end }}
{{- end }}
{{- if .Values.kafka.sasl.mechanism }}
{{- if not (or .Values.kafka.sasl.password .Values.kafka.sasl.existingSecret) }}{{ fail "kafka.sasl.mechanism needs kafka.sasl.existingSecret (or kafka.sasl.password)" }}{{ end }}
{{- $_ := set $c "kafka-sasl-mechanism" .Values.kafka.sasl.mechanism }}
{{- $_ := set $c "kafka-sasl-username" (required "kafka.sasl.username is required with kafka.sasl.mechanism" .Values.kafka.sasl.username) }}
{{- $_ := set $c "kafka-sasl-password-file" "/etc/minipipe/kafka-sasl/password" }}
{{- end }}
{{- toYaml $c }}
{{- end }}
