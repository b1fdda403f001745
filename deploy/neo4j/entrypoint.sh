#!/usr/bin/env bash
# neo4j-entrypoint serve   run Neo4j with Bolt on 0.0.0.0:7687; data in /data (the volume)
# neo4j-entrypoint ready   exit 0 once Bolt serves with the configured password (health check)
#
# Environment: NEO4J_PASSWORD (required; user neo4j), NEO4J_ADVERTISED (host:port clients are
# told, default localhost:7687), NEO4J_PAGECACHE_MB (default 512), NEO4J_TX_MAX_MB and
# NEO4J_TX_TOTAL_MB (one transaction's and all transactions' memory, default 256 and 768:
# workers split a graph batch the server refuses as too large), NEO4J_HEAP_OPTS (default
# -Xms512m -Xmx1g).
set -euo pipefail
READY_FILE=/data/.mkg-ready

case "${1:-serve}" in
    serve)
        if [[ -z "${NEO4J_PASSWORD:-}" ]]; then
            echo "neo4j-entrypoint: set NEO4J_PASSWORD" >&2
            exit 2
        fi
        read -r -a HEAP <<<"${NEO4J_HEAP_OPTS:--Xms512m -Xmx1g}"
        mapfile -t FLAGS </opt/neo4j/jvm.flags
        export MKG_NEO4J_PASSWORD="$NEO4J_PASSWORD" \
               MKG_NEO4J_ADVERTISED="${NEO4J_ADVERTISED:-localhost:7687}" \
               MKG_NEO4J_PAGECACHE_MB="${NEO4J_PAGECACHE_MB:-512}" \
               MKG_NEO4J_TX_MAX_MB="${NEO4J_TX_MAX_MB:-256}" \
               MKG_NEO4J_TX_TOTAL_MB="${NEO4J_TX_TOTAL_MB:-768}" \
               MKG_NEO4J_READY_FILE="$READY_FILE"
        unset NEO4J_PASSWORD
        exec java "${HEAP[@]}" "${FLAGS[@]}" -cp "/opt/neo4j/classes:/opt/neo4j/lib/*" \
            MkgNeo4j /data 0.0.0.0 7687
        ;;
    ready)
        # the launcher writes the file after the password is set and removes it on shutdown
        [[ -f "$READY_FILE" ]] && exec 3<>/dev/tcp/127.0.0.1/7687
        ;;
    *)
        exec "$@"
        ;;
esac
