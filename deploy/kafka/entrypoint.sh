#!/usr/bin/env bash
# kafka-entrypoint serve   write server.properties from the environment, format the log dir
#                          on first start (KRaft, standalone controller), run the broker
# kafka-entrypoint ready   exit 0 when a client can list topics (the health check)
# kafka-entrypoint config  print the server.properties `serve` would write
#
# Listeners: INTERNAL on :9092 for the compose network (advertised as
# KAFKA_INTERNAL_ADVERTISED, default kafka:9092) and HOST on :19092 for producers outside it
# (advertised as KAFKA_HOST_ADVERTISED, default 127.0.0.1:19092: publish it on the host's
# loopback). LOCAL on 127.0.0.1:9094 is the health check's: it resolves in any container,
# whatever the compose network calls the broker. Any other broker setting:
# KAFKA_CFG_<NAME> with dots as underscores, e.g. KAFKA_CFG_LOG_RETENTION_HOURS=48 ->
# log.retention.hours=48.
set -euo pipefail

DATA_DIR="${KAFKA_DATA_DIR:-/var/lib/kafka/data}"
CONFIG="${KAFKA_CONFIG:-/etc/kafka/server.properties}"
CLASSPATH="/opt/kafka/classes:/opt/kafka/lib/*"
read -r -a HEAP <<<"${KAFKA_HEAP_OPTS:--Xms256m -Xmx1g}"
JAVA=(java "${HEAP[@]}" -XX:+UseG1GC -Djava.awt.headless=true -Dlog4j2.shutdownHookEnabled=false
      -Dlog4j2.configurationFile=/opt/kafka/log4j2.properties -cp "$CLASSPATH")

server_properties() {
    local max_bytes=$((16 * 1024 * 1024))  # posts carry images; the client config allows 16 MiB
    {
        echo "process.roles=broker,controller"
        echo "node.id=${KAFKA_NODE_ID:-1}"
        echo "controller.quorum.bootstrap.servers=localhost:9093"
        echo "listeners=INTERNAL://0.0.0.0:9092,HOST://0.0.0.0:19092,LOCAL://127.0.0.1:9094,CONTROLLER://localhost:9093"
        echo "advertised.listeners=INTERNAL://${KAFKA_INTERNAL_ADVERTISED:-kafka:9092},HOST://${KAFKA_HOST_ADVERTISED:-127.0.0.1:19092},LOCAL://127.0.0.1:9094,CONTROLLER://localhost:9093"
        echo "listener.security.protocol.map=INTERNAL:PLAINTEXT,HOST:PLAINTEXT,LOCAL:PLAINTEXT,CONTROLLER:PLAINTEXT"
        echo "inter.broker.listener.name=INTERNAL"
        echo "controller.listener.names=CONTROLLER"
        echo "log.dirs=$DATA_DIR"
        echo "num.partitions=${KAFKA_NUM_PARTITIONS:-6}"
        echo "auto.create.topics.enable=true"
        echo "offsets.topic.replication.factor=1"
        echo "transaction.state.log.replication.factor=1"
        echo "transaction.state.log.min.isr=1"
        echo "share.coordinator.state.topic.replication.factor=1"
        echo "share.coordinator.state.topic.min.isr=1"
        echo "message.max.bytes=$max_bytes"
        echo "replica.fetch.max.bytes=$max_bytes"
        local name key
        for name in $(compgen -e | grep '^KAFKA_CFG_' || true); do
            key="${name#KAFKA_CFG_}"
            key="${key,,}"
            echo "${key//_/.}=${!name}"
        done
    }
}


case "${1:-serve}" in
    serve)
        server_properties >"$CONFIG"
        if [[ ! -f "$DATA_DIR/meta.properties" ]]; then
            cluster_id="${KAFKA_CLUSTER_ID:-$("${JAVA[@]}" kafka.tools.StorageTool random-uuid)}"
            "${JAVA[@]}" kafka.tools.StorageTool format --standalone -t "$cluster_id" -c "$CONFIG"
        fi
        exec "${JAVA[@]}" kafka.Kafka "$CONFIG"
        ;;
    config)
        server_properties
        ;;
    ready)
        # log4j's default configuration (errors only): a health check's output is kept by docker
        exec java -Xmx64m -XX:TieredStopAtLevel=1 -cp "$CLASSPATH" KafkaReady 127.0.0.1:9094
        ;;
    *)
        exec "$@"
        ;;
esac
