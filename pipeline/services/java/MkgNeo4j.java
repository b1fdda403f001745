import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicBoolean;

import org.neo4j.configuration.GraphDatabaseInternalSettings;
import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.configuration.connectors.BoltConnector;
import org.neo4j.configuration.connectors.HttpConnector;
import org.neo4j.configuration.helpers.SocketAddress;
import org.neo4j.configuration.helpers.SocketAddressParser;
import org.neo4j.dbms.api.DatabaseManagementService;
import org.neo4j.dbms.api.DatabaseManagementServiceBuilder;

/**
 * Runs embedded Neo4j Community with a Bolt listener, so a Maven Central jar set
 * can stand in for the server tarball (which is not published to Maven Central).
 *
 * <p>Usage: {@code MkgNeo4j <home-dir> <host> <bolt-port>}. The password for user
 * {@code neo4j} comes from env {@code MKG_NEO4J_PASSWORD} (kept off the command line);
 * if it is empty, auth is disabled. Blocks until SIGTERM, then shuts down cleanly.
 *
 * <p>Optional environment, for the container image ({@code deploy/neo4j}):
 * {@code MKG_NEO4J_ADVERTISED} (host:port clients are told, when the listen address is
 * 0.0.0.0), {@code MKG_NEO4J_PAGECACHE_MB} (default 128, sized for a 2-core dev box),
 * {@code MKG_NEO4J_TX_MAX_MB} and {@code MKG_NEO4J_TX_TOTAL_MB} (one transaction's and all
 * transactions' memory, default 128 and 256: a bigger graph batch is refused, and split) and
 * {@code MKG_NEO4J_READY_FILE} (written once Bolt serves with the wanted password, removed
 * on shutdown: what the container's health check reads).
 */
public final class MkgNeo4j {
    public static void main(String[] args) {
        try {
            run(args);
        } catch (Throwable e) { // e.g. port in use: exit instead of idling on Neo4j's threads
            e.printStackTrace();
            System.exit(1);
        }
    }

    private static void run(String[] args) throws InterruptedException {
        if (args.length != 3) {
            System.err.println("usage: MkgNeo4j <home-dir> <host> <bolt-port>");
            System.exit(2);
        }
        Path home = Path.of(args[0]).toAbsolutePath();
        SocketAddress bolt = new SocketAddress(args[1], Integer.parseInt(args[2]));
        String password = System.getenv().getOrDefault("MKG_NEO4J_PASSWORD", "");
        boolean auth = !password.isEmpty();
        String advertisedEnv = System.getenv().getOrDefault("MKG_NEO4J_ADVERTISED", "");
        SocketAddress advertised = advertisedEnv.isEmpty() ? bolt : SocketAddressParser.socketAddress(advertisedEnv, SocketAddress::new);
        long pagecacheMb = Long.parseLong(System.getenv().getOrDefault("MKG_NEO4J_PAGECACHE_MB", "128"));
        long txMaxMb = Long.parseLong(System.getenv().getOrDefault("MKG_NEO4J_TX_MAX_MB", "128"));
        long txTotalMb = Long.parseLong(System.getenv().getOrDefault("MKG_NEO4J_TX_TOTAL_MB", "256"));
        String readyEnv = System.getenv().getOrDefault("MKG_NEO4J_READY_FILE", "");
        Path readyFile = readyEnv.isEmpty() ? null : Path.of(readyEnv);
        deleteQuietly(readyFile); // a file left by a killed run must not say "ready" before we are

        // Small footprint: Kafka shares a 2-core box; a test graph needs little cache.
        DatabaseManagementService dbms = new DatabaseManagementServiceBuilder(home)
                .setConfig(BoltConnector.enabled, true)
                .setConfig(BoltConnector.listen_address, bolt)
                .setConfig(BoltConnector.advertised_address, advertised)
                .setConfig(HttpConnector.enabled, false)
                .setConfig(GraphDatabaseSettings.auth_enabled, auth)
                .setConfig(GraphDatabaseSettings.auth_minimum_password_length, 1)
                // Health probes may race the password change below; never lock the user out.
                .setConfig(GraphDatabaseSettings.auth_max_failed_attempts, 0)
                .setConfig(GraphDatabaseSettings.pagecache_memory, pagecacheMb << 20)
                .setConfig(GraphDatabaseSettings.memory_transaction_global_max_size, txTotalMb << 20)
                .setConfig(GraphDatabaseSettings.memory_transaction_max_size, txMaxMb << 20)
                .setConfig(GraphDatabaseSettings.preallocate_logical_logs, false)
                .setConfig(GraphDatabaseSettings.keep_logical_logs, "128M size")
                // Netty's default 5 s quiet period, paid twice, made SIGTERM take ~10 s.
                .setConfig(GraphDatabaseInternalSettings.netty_server_shutdown_quiet_period, 0)
                .setConfig(GraphDatabaseInternalSettings.netty_server_shutdown_timeout, Duration.ofSeconds(2))
                .build();

        CountDownLatch stopped = new CountDownLatch(1);
        AtomicBoolean stopping = new AtomicBoolean();
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            stopping.set(true);
            deleteQuietly(readyFile);
            System.out.println("MkgNeo4j: shutting down");
            try {
                dbms.shutdown();
            } finally {
                stopped.countDown();
            }
        }, "mkg-neo4j-shutdown"));

        if (auth) {
            try {
                setPassword(dbms, password);
            } catch (RuntimeException e) {
                if (!stopping.get()) { // a real failure, not SIGTERM arriving mid-start
                    e.printStackTrace();
                    System.exit(1); // Neo4j's non-daemon threads would keep a broken JVM alive
                }
            }
        }
        System.out.println("MkgNeo4j: ready on bolt://" + bolt + " (auth " + (auth ? "enabled" : "disabled") + ")");
        System.out.flush();
        if (readyFile != null) {
            try {
                Files.writeString(readyFile, "bolt://" + advertised + "\n");
            } catch (IOException e) {
                throw new IllegalStateException("cannot write ready file " + readyFile, e);
            }
        }
        stopped.await();
    }

    private static void deleteQuietly(Path file) {
        if (file == null) {
            return;
        }
        try {
            Files.deleteIfExists(file);
        } catch (IOException e) {
            System.err.println("MkgNeo4j: cannot remove " + file + ": " + e);
        }
    }

    /**
     * Embedded mode has no set-initial-password step, so the default neo4j/neo4j user
     * is given the wanted password through the system database on every start.
     */
    private static void setPassword(DatabaseManagementService dbms, String password) {
        try {
            dbms.database(GraphDatabaseSettings.SYSTEM_DATABASE_NAME).executeTransactionally(
                    "ALTER USER neo4j SET PASSWORD $pw CHANGE NOT REQUIRED", Map.of("pw", password));
        } catch (RuntimeException e) {
            // Restart on an existing data dir: the password is already the wanted one.
            if (!String.valueOf(e.getMessage()).contains("cannot be the same")) {
                throw e;
            }
        }
    }
}
