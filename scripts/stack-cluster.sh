# The cluster mode of scripts/stack (sourced by it; not run on its own): three Kafka brokers and a Redis Cluster
# of three primaries and three replicas, all on 127.0.0.1, beside the single-node stack (other ports).
#
# Kafka: three combined nodes (broker and controller in one JVM each), a static KRaft quorum of three voters.
# Three combined nodes rather than three controllers and three brokers: half the JVMs on a 2-core machine, and
# the quorum still survives one node down, which is what the failover scenarios take away. Production clusters
# separate the roles. Internal topics and new topics are replicated three times, min.insync.replicas=2.
#
# Redis: six redis-server processes with --cluster-enabled yes, joined once by `redis-cli --cluster create
# --cluster-replicas 1`; each keeps its nodes.conf, so a restarted node rejoins (a killed primary comes back
# as a replica of the one promoted in its place). cluster-node-timeout is 2 s, so a failover takes seconds, and
# cluster-require-full-coverage is off, so while one primary is down the others keep serving their slots.

CLUSTER_KAFKA_PORTS=${CLUSTER_KAFKA_PORTS:-"19291 19292 19293"}
CLUSTER_CONTROLLER_PORTS=${CLUSTER_CONTROLLER_PORTS:-"19391 19392 19393"}
CLUSTER_REDIS_PORTS=${CLUSTER_REDIS_PORTS:-"17001 17002 17003 17004 17005 17006"}
CLUSTER_KAFKA_HEAP=${CLUSTER_KAFKA_HEAP:-384m}
CLUSTER_REDIS_NODE_TIMEOUT_MS=${CLUSTER_REDIS_NODE_TIMEOUT_MS:-2000}
cluster_dir=$STACK_DIR/cluster

cluster_bootstrap() { local p out=""; for p in $CLUSTER_KAFKA_PORTS; do out+="${out:+,}127.0.0.1:$p"; done; echo "$out"; }
cluster_redis_nodes() { local p out=""; for p in $CLUSTER_REDIS_PORTS; do out+="${out:+,}127.0.0.1:$p"; done; echo "$out"; }

write_cluster_kafka_config() {
  local node=$1 port=$2 controller=$3 dir=$cluster_dir/kafka-$1 voters="" i=1 c
  for c in $CLUSTER_CONTROLLER_PORTS; do voters+="${voters:+,}$i@127.0.0.1:$c"; i=$((i + 1)); done
  mkdir -p "$dir"
  cat >"$dir/server.properties" <<EOF
process.roles=broker,controller
node.id=$node
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/data
num.partitions=6
default.replication.factor=3
min.insync.replicas=2
unclean.leader.election.enable=false
auto.create.topics.enable=false
group.initial.rebalance.delay.ms=0
offsets.topic.replication.factor=3
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
transaction.state.log.num.partitions=6
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=2
log.retention.hours=24
EOF
  sed "s#$kafka_dir/server.log#$dir/server.log#" "$kafka_dir/log4j2.xml" >"$dir/log4j2.xml"
}

cluster_kafka_java() {
  echo java "-Xms$CLUSTER_KAFKA_HEAP" "-Xmx$CLUSTER_KAFKA_HEAP" -XX:+UseG1GC -Djava.awt.headless=true \
    "-Dlog4j2.configurationFile=$cluster_dir/kafka-$1/log4j2.xml"
}

# Start the brokers that are not running (all three at the first start: a quorum of one cannot elect).
start_cluster_kafka() {
  fetch_kafka
  write_kafka_config  # the single node's log4j2.xml is the template
  mkdir -p "$cluster_dir"
  [ -f "$cluster_dir/kafka-cluster.id" ] || "${kafka_java[@]}" kafka.tools.StorageTool random-uuid >"$cluster_dir/kafka-cluster.id"
  local ports=($CLUSTER_KAFKA_PORTS) controllers=($CLUSTER_CONTROLLER_PORTS) i node dir started=()
  for i in 0 1 2; do
    node=$((i + 1)); dir=$cluster_dir/kafka-$node
    if recorded_alive "$dir/pid" kafka.Kafka; then log "cluster kafka-$node already running (pid $(cat "$dir/pid"))"; continue; fi
    port_open "${ports[$i]}" && { log "port ${ports[$i]} is taken by a process we did not start"; exit 1; }
    write_cluster_kafka_config "$node" "${ports[$i]}" "${controllers[$i]}"
    local java=($(cluster_kafka_java "$node") -cp "$KAFKA_CACHE/libs/*")
    if [ ! -f "$dir/data/meta.properties" ]; then
      "${java[@]}" kafka.tools.StorageTool format -t "$(cat "$cluster_dir/kafka-cluster.id")" \
        -c "$dir/server.properties" >"$dir/format.log" 2>&1 || { cat "$dir/format.log" >&2; exit 1; }
    fi
    : >"$dir/server.log"
    nohup "${java[@]}" kafka.Kafka "$dir/server.properties" >"$dir/stdout.log" 2>&1 </dev/null &
    echo $! >"$dir/pid"
    started+=("$node")
    log "cluster kafka-$node starting (pid $!) on 127.0.0.1:${ports[$i]}"
  done
  for node in "${started[@]}"; do
    dir=$cluster_dir/kafka-$node
    for _ in $(seq 1 900); do
      recorded_alive "$dir/pid" kafka.Kafka || { log "kafka-$node exited during start:"; tail -n 30 "$dir/server.log" >&2; exit 1; }
      grep -q "Kafka Server started" "$dir/server.log" && break
      sleep 0.2
    done
    grep -q "Kafka Server started" "$dir/server.log" || { log "kafka-$node not ready in 180 s; see $dir/server.log"; exit 1; }
    log "cluster kafka-$node ready"
  done
}

start_cluster_redis() {
  ensure_redis_installed
  local port dir
  for port in $CLUSTER_REDIS_PORTS; do
    dir=$cluster_dir/redis-$port
    mkdir -p "$dir"
    recorded_alive "$dir/pid" redis-server && continue  # running already (wait_cluster_redis_ok says so)
    port_open "$port" && { log "port $port is taken by a process we did not start"; exit 1; }
    nohup redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" --save "" --appendonly no --daemonize no \
      --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout "$CLUSTER_REDIS_NODE_TIMEOUT_MS" --cluster-require-full-coverage no \
      --logfile "$dir/redis.log" >/dev/null 2>&1 </dev/null &
    echo $! >"$dir/pid"
  done
  for port in $CLUSTER_REDIS_PORTS; do
    for _ in $(seq 1 200); do
      [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = "PONG" ] && break
      sleep 0.1
    done
  done
  if [ ! -f "$cluster_dir/redis-created" ]; then
    local nodes=() p
    for p in $CLUSTER_REDIS_PORTS; do nodes+=("127.0.0.1:$p"); done
    log "creating the Redis Cluster (3 primaries, 3 replicas)"
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes >"$cluster_dir/redis-create.log" 2>&1 \
      || { cat "$cluster_dir/redis-create.log" >&2; exit 1; }
    touch "$cluster_dir/redis-created"
  fi
  wait_cluster_redis_ok
}

# Every node reports cluster_state:ok, and every replica is in sync with its primary (a node that rejoined
# after a kill is loaded by a full sync first, which forks its primary: tests start after that).
wait_cluster_redis_ok() {
  local port deadline=$((SECONDS + 60))
  while [ $SECONDS -lt $deadline ]; do
    local ok=1
    for port in $CLUSTER_REDIS_PORTS; do
      redis-cli -h 127.0.0.1 -p "$port" cluster info 2>/dev/null | grep -q "cluster_state:ok" || ok=0
      local replication
      replication=$(redis-cli -h 127.0.0.1 -p "$port" info replication 2>/dev/null)
      if grep -q "role:slave" <<<"$replication"; then
        grep -q "master_link_status:up" <<<"$replication" && grep -q "master_sync_in_progress:0" <<<"$replication" || ok=0
      fi
    done
    [ $ok -eq 1 ] && { log "redis cluster ready ($(cluster_redis_nodes))"; return 0; }
    sleep 0.2
  done
  log "the Redis Cluster did not report cluster_state:ok within 60 s"
  exit 1
}

# Create the internal topics (__consumer_offsets, __transaction_state) and wait until their coordinators have
# loaded, as on a cluster that has been running. On a brand-new cluster the first worker started while they
# were being created crashed with SIGSEGV (exit -11) three times in four fresh-cluster runs here, inside the
# native Kafka client (confluent-kafka 2.16.1, librdkafka 2.16.0; not found yet); once warm, never.
warm_cluster_kafka() {
  [ -x "$repo/.venv/bin/python" ] || return 0
  "$repo/.venv/bin/python" - "$(cluster_bootstrap)" <<'PY' || { log "the cluster's internal topics did not load"; exit 1; }
import sys, time, uuid
import confluent_kafka
from confluent_kafka import TopicPartition
bootstrap, deadline = sys.argv[1], time.monotonic() + 120
consumer = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": "stack-warm-up", "log_level": 2})
producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "transactional.id": "stack-warm-up", "log_level": 2})
while True:
    try:
        consumer.committed([TopicPartition("__consumer_offsets", 0)], timeout=10)
        producer.init_transactions(30)
        break
    except confluent_kafka.KafkaException:
        if time.monotonic() > deadline:
            raise
        time.sleep(1)
consumer.close()
PY
  log "cluster kafka internal topics ready"
}

cluster_status() {
  local up=0 node port ports=($CLUSTER_KAFKA_PORTS)
  echo "CLUSTER_KAFKA_BOOTSTRAP=$(cluster_bootstrap)"
  echo "CLUSTER_REDIS_NODES=$(cluster_redis_nodes)"
  for node in 1 2 3; do
    if recorded_alive "$cluster_dir/kafka-$node/pid" kafka.Kafka && port_open "${ports[$((node - 1))]}"; then
      echo "CLUSTER_KAFKA_${node}=up pid $(cat "$cluster_dir/kafka-$node/pid") 127.0.0.1:${ports[$((node - 1))]}"
    else
      echo "CLUSTER_KAFKA_${node}=down"; up=1
    fi
  done
  for port in $CLUSTER_REDIS_PORTS; do
    if recorded_alive "$cluster_dir/redis-$port/pid" redis-server && port_open "$port"; then
      echo "CLUSTER_REDIS_$port=up pid $(cat "$cluster_dir/redis-$port/pid")"
    else
      echo "CLUSTER_REDIS_$port=down"; up=1
    fi
  done
  for port in $CLUSTER_REDIS_PORTS; do  # the nodes table from the first node that answers
    if redis-cli -h 127.0.0.1 -p "$port" cluster nodes 2>/dev/null | sed 's/^/  /' | grep .; then break; fi
  done
  return $up
}

# SIGTERM to every broker at once (one left alone cannot finish its controlled shutdown without a quorum),
# then to the Redis nodes; each waited for and killed after 30 s by stop_recorded.
stop_cluster() {
  local node port
  for node in 1 2 3; do
    recorded_alive "$cluster_dir/kafka-$node/pid" kafka.Kafka && kill -TERM "$(cat "$cluster_dir/kafka-$node/pid")"
  done
  for node in 1 2 3; do
    stop_recorded "cluster kafka-$node" "$cluster_dir/kafka-$node/pid" kafka.Kafka
  done
  for port in $CLUSTER_REDIS_PORTS; do
    stop_recorded "cluster redis $port" "$cluster_dir/redis-$port/pid" redis-server
  done
}
