{{/* Names and labels. The full name leaves room for the suffixes below within Kubernetes' 63 characters. */}}
{{- define "stream-scorer.name" -}}
{{- .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end }}

{{- define "stream-scorer.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end }}

{{- define "stream-scorer.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- .Values.serviceAccount.name | default (include "stream-scorer.fullname" .) -}}
{{- else -}}
{{- .Values.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end }}

{{- define "stream-scorer.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "stream-scorer.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector labels of one component: (dict "root" $ "component" "worker") */}}
{{- define "stream-scorer.selectorLabels" -}}
app.kubernetes.io/name: {{ include "stream-scorer.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "stream-scorer.image" -}}
{{- printf "%s:%s" (required "image.repository is required" .Values.image.repository) (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end }}

{{/* Where the settings file and the files beside it are mounted, and where secrets are. */}}
{{- define "stream-scorer.configDir" -}}/etc/stream-scorer{{- end }}
{{- define "stream-scorer.secretsDir" -}}/run/secrets/stream-scorer{{- end }}

{{/* A secret reference {secretName, key} as the settings read it: file:/run/secrets/stream-scorer/<name>/<key> */}}
{{- define "stream-scorer.secretFile" -}}
{{- printf "file:%s/%s/%s" (include "stream-scorer.secretsDir" .root) (required "a secret reference needs secretName" .ref.secretName) (required "a secret reference needs key" .ref.key) -}}
{{- end }}

{{/* Every referenced {secretName, key}, once each, as JSON: {"<name>/<key>": {secretName, key}} */}}
{{- define "stream-scorer.secretRefs" -}}
{{- $refs := dict -}}
{{- $s := .Values.secrets -}}
{{- range $setting, $ref := $s.kafkaClient }}{{ $_ := set $refs (printf "%s/%s" $ref.secretName $ref.key) $ref }}{{ end -}}
{{- range $ref := list $s.redisPassword $s.schemaRegistryPassword $s.modelPublicKey -}}
{{- if $ref }}{{ $_ := set $refs (printf "%s/%s" $ref.secretName $ref.key) $ref }}{{ end -}}
{{- end -}}
{{- range $ref := $s.files }}{{ $_ := set $refs (printf "%s/%s" $ref.secretName $ref.key) $ref }}{{ end -}}
{{- toJson $refs -}}
{{- end }}

{{/* The render fails on values that cannot work; each message says which value to change. */}}
{{- define "stream-scorer.validate" -}}
{{- $partitions := int .Values.kafka.partitions -}}
{{- if lt $partitions 1 }}{{ fail "kafka.partitions (the input topic's partition count) must be at least 1" }}{{ end -}}
{{- if gt (int .Values.worker.replicas) $partitions -}}
{{- fail (printf "worker.replicas (%d) exceeds kafka.partitions (%d): a worker without a partition only idles" (int .Values.worker.replicas) $partitions) -}}
{{- end -}}
{{- if .Values.keda.enabled -}}
{{- $min := int .Values.keda.minReplicas -}}
{{- $max := int .Values.keda.maxReplicas -}}
{{- if gt $max $partitions -}}
{{- fail (printf "keda.maxReplicas (%d) exceeds kafka.partitions (%d): a worker without a partition only idles" $max $partitions) -}}
{{- end -}}
{{- if or (lt $min 0) (lt $max 1) (gt $min $max) }}{{ fail "keda: 0 <= minReplicas <= maxReplicas and maxReplicas >= 1 are required" }}{{ end -}}
{{- end -}}
{{- if le (float64 .Values.batch.flushTimeoutSeconds) 0.0 }}{{ fail "batch.flushTimeoutSeconds must be > 0" }}{{ end -}}
{{- if lt (int .Values.terminationGraceMarginSeconds) 1 }}{{ fail "terminationGraceMarginSeconds must be at least 1" }}{{ end -}}
{{- end }}

{{/* Seconds a stopped pod has: the flush timeout (a batch waiting for its acknowledgements) plus the margin. */}}
{{- define "stream-scorer.gracePeriod" -}}
{{- add (int (ceil .Values.batch.flushTimeoutSeconds)) (int .Values.terminationGraceMarginSeconds) -}}
{{- end }}

{{/* Whole numbers in a map (and the maps inside it) made integers, in place: values read from YAML are floats,
which toToml would write as "9464.0". The settings take an integer wherever they take a float. */}}
{{- define "stream-scorer.integers" -}}
{{- $table := . -}}
{{- range $key, $value := $table -}}
{{- if and (kindIs "float64" $value) (eq $value (floor $value)) -}}
{{- $_ := set $table $key (int64 $value) -}}
{{- else if kindIs "map" $value -}}
{{- include "stream-scorer.integers" $value -}}
{{- else if kindIs "slice" $value -}}
{{- range $item := $value }}{{ if kindIs "map" $item }}{{ include "stream-scorer.integers" $item }}{{ end }}{{ end -}}
{{- end -}}
{{- end -}}
{{- end }}

{{/* The settings file: values.settings plus what the chart owns (see values.yaml), rendered as TOML. */}}
{{- define "stream-scorer.settings" -}}
{{- $v := .Values -}}
{{- $s := deepCopy ($v.settings | default (dict)) -}}
{{- $owned := dict
  "kafka.bootstrap_servers" "kafka.bootstrapServers" "kafka.input_topic" "kafka.inputTopic"
  "kafka.group_id" "kafka.groupId" "kafka.topic_partitions" "kafka.partitions"
  "kafka.worker_slot" "the pod ordinal" "kafka.client_secrets" "secrets.kafkaClient"
  "batch.flush_timeout_seconds" "batch.flushTimeoutSeconds" "metrics.enabled" "the chart (always on)"
  "metrics.host" "the chart (0.0.0.0)" "metrics.port" "metrics.port and labels.metricsPort" -}}
{{- range $path, $from := $owned -}}
{{- $section := get $s (first (splitList "." $path)) | default (dict) -}}
{{- if hasKey $section (last (splitList "." $path)) -}}
{{- fail (printf "settings.%s is set by the chart from %s: remove it from settings" $path $from) -}}
{{- end -}}
{{- end -}}
{{- if hasKey $s "model_path" }}{{ fail "settings.model_path is set by the chart from model.mountPath and model.path" }}{{ end -}}
{{- $kafka := get $s "kafka" | default (dict) -}}
{{- $client := dict -}}
{{- range $key, $value := (get $kafka "client" | default (dict)) -}}
{{- if regexMatch "(?i)(password|secret|token|jaas|key\\.pem)" $key -}}
{{- fail (printf "settings.kafka.client.%s is a secret: name a Secret's key in secrets.kafkaClient instead" $key) -}}
{{- end -}}
{{- $_ := set $client $key (toString $value) -}}
{{- end -}}
{{- if $client }}{{ $_ := set $kafka "client" $client }}{{ end -}}
{{- $_ := set $kafka "bootstrap_servers" $v.kafka.bootstrapServers -}}
{{- $_ := set $kafka "input_topic" $v.kafka.inputTopic -}}
{{- $_ := set $kafka "group_id" $v.kafka.groupId -}}
{{- $_ := set $kafka "topic_partitions" (int $v.kafka.partitions) -}}
{{- $clientSecrets := dict -}}
{{- range $key, $ref := $v.secrets.kafkaClient -}}
{{- $_ := set $clientSecrets $key (include "stream-scorer.secretFile" (dict "root" $ "ref" $ref)) -}}
{{- end -}}
{{- if $clientSecrets }}{{ $_ := set $kafka "client_secrets" $clientSecrets }}{{ end -}}
{{- $_ := set $s "kafka" $kafka -}}
{{- range $ref := list (list "redis" "password" $v.secrets.redisPassword "secrets.redisPassword") (list "schema_registry" "password" $v.secrets.schemaRegistryPassword "secrets.schemaRegistryPassword") (list "" "model_public_key" $v.secrets.modelPublicKey "secrets.modelPublicKey") -}}
{{- $table := $s -}}
{{- if index $ref 0 }}{{ $table = get $s (index $ref 0) | default (dict) }}{{ end -}}
{{- $given := get $table (index $ref 1) | toString -}}
{{- if and $given (not (regexMatch "^(env|file):" $given)) -}}
{{- fail (printf "settings %s holds a secret value: name a Secret's key in %s instead" (index $ref 1) (index $ref 3)) -}}
{{- end -}}
{{- if index $ref 2 -}}
{{- if $given }}{{ fail (printf "%s and settings both set %s: keep one" (index $ref 3) (index $ref 1)) }}{{ end -}}
{{- $_ := set $table (index $ref 1) (include "stream-scorer.secretFile" (dict "root" $ "ref" (index $ref 2))) -}}
{{- end -}}
{{- if not (get $table (index $ref 1)) }}{{ $_ := unset $table (index $ref 1) }}{{ end -}}
{{- if and (index $ref 0) $table }}{{ $_ := set $s (index $ref 0) $table }}{{ end -}}
{{- end -}}
{{- $batch := get $s "batch" | default (dict) -}}
{{- $_ := set $batch "flush_timeout_seconds" (float64 $v.batch.flushTimeoutSeconds) -}}
{{- $_ := set $s "batch" $batch -}}
{{- $_ := set $s "metrics" (dict "enabled" true "host" "0.0.0.0" "port" (int $v.metrics.port)) -}}
{{- $_ := set $s "model_path" (printf "%s/%s" $v.model.mountPath $v.model.path) -}}
{{- include "stream-scorer.integers" $s -}}
{{- toToml $s -}}
{{- end }}

{{/* The volumes both pods mount: the settings, the secrets referenced (if any) and a writable /tmp. */}}
{{- define "stream-scorer.volumes" -}}
- name: config
  configMap:
    name: {{ include "stream-scorer.fullname" . }}
{{- $refs := include "stream-scorer.secretRefs" . | fromJson }}
{{- if $refs }}
- name: secrets
  projected:
    defaultMode: 0440
    sources:
      {{- range $path, $ref := $refs }}
      - secret:
          name: {{ $ref.secretName }}
          items:
            - key: {{ $ref.key }}
              path: {{ $path }}
      {{- end }}
{{- end }}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- end }}

{{- define "stream-scorer.volumeMounts" -}}
- name: config
  mountPath: {{ include "stream-scorer.configDir" . }}
  readOnly: true
{{- if include "stream-scorer.secretRefs" . | fromJson }}
- name: secrets
  mountPath: {{ include "stream-scorer.secretsDir" . }}
  readOnly: true
{{- end }}
- name: tmp
  mountPath: /tmp
{{- end }}

{{/* Probes on the metrics port (monitoring/server.py): alive while it serves, ready once partitions are
assigned and Redis answers. The startup probe covers the checks before the endpoint starts (model, Redis). */}}
{{- define "stream-scorer.probes" -}}
startupProbe:
  httpGet:
    path: /healthz
    port: metrics
  periodSeconds: 5
  failureThreshold: 60
livenessProbe:
  httpGet:
    path: /healthz
    port: metrics
  periodSeconds: 10
  timeoutSeconds: 5
  failureThreshold: 6
readinessProbe:
  httpGet:
    path: /readyz
    port: metrics
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 3
{{- end }}

{{/* Prefer spreading a component's pods over nodes (a lost node then takes few workers with it). */}}
{{- define "stream-scorer.affinity" -}}
{{- if .affinity -}}
{{ toYaml .affinity }}
{{- else -}}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "stream-scorer.selectorLabels" (dict "root" .root "component" .component) | nindent 12 }}
{{- end -}}
{{- end }}
