import java.util.Properties;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;

/**
 * Health check: exit 0 once the broker answers a metadata request (list topics) within
 * 10 s, 1 otherwise. A port that accepts connections is not enough: the broker listens
 * before its KRaft controller has elected itself and before it can serve clients.
 */
public final class KafkaReady {
    public static void main(String[] args) {
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args.length > 0 ? args[0] : "localhost:9092");
        props.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, 10_000);
        props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 10_000);
        try (Admin admin = Admin.create(props)) {
            admin.listTopics().names().get(10, TimeUnit.SECONDS);
            System.exit(0);
        } catch (Exception e) {
            System.err.println("kafka not ready: " + e);
            System.exit(1);
        }
    }
}
