# The secured mode of scripts/stack (sourced by it; not run on its own): one more Kafka broker with a SASL_SSL
# listener (SCRAM-SHA-512 users, KRaft's StandardAuthorizer, allow.everyone.if.no.acl.found=false) and one more
# redis-server with TLS only and ACL users, on 127.0.0.1. A throwaway CA and the servers' certificates are made
# with openssl at the first start, and an admin password at random, under $STACK_DIR/secure (never in the repo).
#
# The admin (Kafka User:admin, Redis user "default") is the only principal with rights: tests create their
# least-privilege users and apply deploy/security/ (the ACLs the docs show) through the admin.

SECURE_KAFKA_PORT=${SECURE_KAFKA_PORT:-19192}
SECURE_CONTROLLER_PORT=${SECURE_CONTROLLER_PORT:-19193}
SECURE_REDIS_PORT=${SECURE_REDIS_PORT:-16380}
secure_dir=$STACK_DIR/secure
tls_dir=$secure_dir/tls
secure_kafka_dir=$secure_dir/kafka
secure_redis_dir=$secure_dir/redis

# A CA, and one server certificate for 127.0.0.1 (SAN IP and DNS localhost) that the broker uses on both
# listeners (its CN is the controller listener's mTLS principal) and redis-server on TLS. Valid 30 days.
make_certs() {
  [ -f "$tls_dir/server.p12" ] && return 0
  mkdir -p "$tls_dir"
  chmod 700 "$secure_dir"
  log "making a throwaway CA and server certificate in $tls_dir"
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=stream-scorer test CA" \
    -keyout "$tls_dir/ca.key" -out "$tls_dir/ca.pem" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=stream-scorer-broker" \
    -keyout "$tls_dir/server.key" -out "$tls_dir/server.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n' >"$tls_dir/ext.cnf"
  openssl x509 -req -in "$tls_dir/server.csr" -CA "$tls_dir/ca.pem" -CAkey "$tls_dir/ca.key" -CAcreateserial \
    -days 30 -extfile "$tls_dir/ext.cnf" -out "$tls_dir/server.pem" 2>/dev/null
  openssl rand -hex 16 >"$tls_dir/keystore.password"
  openssl pkcs12 -export -in "$tls_dir/server.pem" -inkey "$tls_dir/server.key" -certfile "$tls_dir/ca.pem" \
    -name broker -out "$tls_dir/server.p12" -passout "file:$tls_dir/keystore.password"
  chmod 600 "$tls_dir"/*.key "$tls_dir/keystore.password"
}

admin_password() {
  if [ ! -f "$secure_dir/admin.password" ]; then
    mkdir -p "$secure_dir"
    (umask 077; openssl rand -hex 16 >"$secure_dir/admin.password")
  fi
  cat "$secure_dir/admin.password"
}

write_secure_kafka_config() {
  local pw ksp
  pw=$(admin_password)
  ksp=$(cat "$tls_dir/keystore.password")
  mkdir -p "$secure_kafka_dir"
  (umask 077; cat >"$secure_kafka_dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$SECURE_CONTROLLER_PORT
listeners=SASL_SSL://127.0.0.1:$SECURE_KAFKA_PORT,CONTROLLER://127.0.0.1:$SECURE_CONTROLLER_PORT
advertised.listeners=SASL_SSL://127.0.0.1:$SECURE_KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=SASL_SSL
listener.security.protocol.map=CONTROLLER:SSL,SASL_SSL:SASL_SSL
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$pw";
listener.name.controller.ssl.client.auth=required
ssl.keystore.type=PKCS12
ssl.keystore.location=$tls_dir/server.p12
ssl.keystore.password=$ksp
ssl.key.password=$ksp
ssl.truststore.type=PEM
ssl.truststore.location=$tls_dir/ca.pem
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:admin;User:CN=stream-scorer-broker
log.dirs=$secure_kafka_dir/data
num.partitions=4
auto.create.topics.enable=false
group.initial.rebalance.delay.ms=0
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
log.retention.hours=24
PROPS
  )
  sed "s#$kafka_dir/server.log#$secure_kafka_dir/server.log#" "$kafka_dir/log4j2.xml" >"$secure_kafka_dir/log4j2.xml"
}

start_secure_kafka() {
  if recorded_alive "$secure_kafka_dir/pid" kafka.Kafka; then
    log "secured kafka already running (pid $(cat "$secure_kafka_dir/pid"))"
    return 0
  fi
  if port_open "$SECURE_KAFKA_PORT"; then
    log "port $SECURE_KAFKA_PORT is taken by a process we did not start; set SECURE_KAFKA_PORT"
    exit 1
  fi
  fetch_kafka
  write_kafka_config  # for its log4j2.xml
  make_certs
  write_secure_kafka_config
  local java=(java "-Xms$KAFKA_HEAP" "-Xmx$KAFKA_HEAP" -XX:+UseG1GC -Djava.awt.headless=true
    "-Dlog4j2.configurationFile=$secure_kafka_dir/log4j2.xml" -cp "$KAFKA_CACHE/libs/*")
  if [ ! -f "$secure_kafka_dir/data/meta.properties" ]; then
    local cluster_id
    cluster_id=$("${java[@]}" kafka.tools.StorageTool random-uuid)
    "${java[@]}" kafka.tools.StorageTool format -t "$cluster_id" -c "$secure_kafka_dir/server.properties" \
      --add-scram "SCRAM-SHA-512=[name=admin,password=$(admin_password)]" >"$secure_kafka_dir/format.log" 2>&1 \
      || { cat "$secure_kafka_dir/format.log" >&2; exit 1; }
  fi
  : >"$secure_kafka_dir/server.log"
  nohup "${java[@]}" kafka.Kafka "$secure_kafka_dir/server.properties" >"$secure_kafka_dir/stdout.log" 2>&1 </dev/null &
  echo $! >"$secure_kafka_dir/pid"
  log "secured kafka starting (pid $!), waiting until it serves SASL_SSL on 127.0.0.1:$SECURE_KAFKA_PORT"
  for _ in $(seq 1 600); do
    if ! recorded_alive "$secure_kafka_dir/pid" kafka.Kafka; then
      log "the secured kafka exited during start; last lines of its logs:"
      tail -n 30 "$secure_kafka_dir/stdout.log" "$secure_kafka_dir/server.log" >&2
      exit 1
    fi
    if port_open "$SECURE_KAFKA_PORT" && grep -q "Kafka Server started" "$secure_kafka_dir/server.log"; then
      log "secured kafka ready"
      return 0
    fi
    sleep 0.2
  done
  log "the secured kafka did not become ready within 120 s; see $secure_kafka_dir/server.log"
  exit 1
}

start_secure_redis() {
  if recorded_alive "$secure_redis_dir/pid" redis-server; then
    log "secured redis already running (pid $(cat "$secure_redis_dir/pid"))"
    return 0
  fi
  ensure_redis_installed
  make_certs
  if port_open "$SECURE_REDIS_PORT"; then
    log "port $SECURE_REDIS_PORT is taken by a process we did not start; set SECURE_REDIS_PORT"
    exit 1
  fi
  mkdir -p "$secure_redis_dir"
  (umask 077; printf 'user default on >%s ~* &* +@all\n' "$(admin_password)" >"$secure_redis_dir/users.acl")
  nohup redis-server --bind 127.0.0.1 --port 0 --tls-port "$SECURE_REDIS_PORT" --tls-cert-file "$tls_dir/server.pem" \
    --tls-key-file "$tls_dir/server.key" --tls-ca-cert-file "$tls_dir/ca.pem" --tls-auth-clients no \
    --aclfile "$secure_redis_dir/users.acl" --dir "$secure_redis_dir" --save "" --appendonly no \
    --daemonize no --logfile "$secure_redis_dir/redis.log" >/dev/null 2>&1 </dev/null &
  echo $! >"$secure_redis_dir/pid"
  for _ in $(seq 1 200); do
    if [ "$(REDISCLI_AUTH=$(admin_password) redis-cli --tls --cacert "$tls_dir/ca.pem" -h 127.0.0.1 \
      -p "$SECURE_REDIS_PORT" ping 2>/dev/null)" = "PONG" ]; then
      log "secured redis ready (pid $(cat "$secure_redis_dir/pid"), TLS on 127.0.0.1:$SECURE_REDIS_PORT)"
      return 0
    fi
    recorded_alive "$secure_redis_dir/pid" redis-server || { tail -n 20 "$secure_redis_dir/redis.log" >&2; exit 1; }
    sleep 0.1
  done
  log "the secured redis did not answer PING within 20 s"
  exit 1
}

secure_status() {
  local up=0
  echo "SECURE_KAFKA_BOOTSTRAP=127.0.0.1:$SECURE_KAFKA_PORT"
  echo "SECURE_REDIS_URL=rediss://127.0.0.1:$SECURE_REDIS_PORT/0"
  echo "SECURE_CA=$tls_dir/ca.pem"
  echo "SECURE_ADMIN_PASSWORD_FILE=$secure_dir/admin.password"
  if recorded_alive "$secure_kafka_dir/pid" kafka.Kafka && port_open "$SECURE_KAFKA_PORT"; then
    echo "SECURE_KAFKA_STATUS=up"
  else
    echo "SECURE_KAFKA_STATUS=down"; up=1
  fi
  if recorded_alive "$secure_redis_dir/pid" redis-server && port_open "$SECURE_REDIS_PORT"; then
    echo "SECURE_REDIS_STATUS=up"
  else
    echo "SECURE_REDIS_STATUS=down"; up=1
  fi
  return $up
}

stop_secure() {
  stop_recorded "secured kafka" "$secure_kafka_dir/pid" kafka.Kafka
  stop_recorded "secured redis" "$secure_redis_dir/pid" redis-server
}
