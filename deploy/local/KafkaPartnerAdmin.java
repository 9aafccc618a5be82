// Onboards a partner on the Kafka door (docs/security.md, class 3): its SCRAM-SHA-512 credential, its topic
// `partner.events.<partner>` and DLQ, and ACLs letting its principal write that topic, read that DLQ (with its
// one consumer group) and nothing else. Kafka's own Admin client from the broker jars, run as a single-file
// program (no build step, no extra dependency):
//   PARTNER_PASSWORD=… java -cp '<kafka lib>/*' KafkaPartnerAdmin.java <bootstrap> <topic prefix or ''> <partner>
// docker-compose.yml deployments do the same with the broker image's kafka-*.sh tools (deploy/kafka-partner.sh).
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.ScramCredentialInfo;
import org.apache.kafka.clients.admin.ScramMechanism;
import org.apache.kafka.clients.admin.UserScramCredentialUpsertion;
import org.apache.kafka.common.acl.AccessControlEntry;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.acl.AclPermissionType;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.resource.PatternType;
import org.apache.kafka.common.resource.ResourcePattern;
import org.apache.kafka.common.resource.ResourceType;

public class KafkaPartnerAdmin {
    public static void main(String[] args) throws Exception {
        if (args.length != 3 || System.getenv("PARTNER_PASSWORD") == null) {
            System.err.println("usage: PARTNER_PASSWORD=… java KafkaPartnerAdmin.java <bootstrap> <topic prefix> <partner>");
            System.exit(2);
        }
        String bootstrap = args[0], prefix = args[1], partner = args[2];
        String topic = prefix + "partner.events." + partner, dlq = topic + ".dlq", group = prefix + "partner-dlq." + partner;
        Properties props = new Properties();
        props.put("bootstrap.servers", bootstrap);
        try (Admin admin = Admin.create(props)) {
            admin.alterUserScramCredentials(List.of(new UserScramCredentialUpsertion(
                partner, new ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192), System.getenv("PARTNER_PASSWORD"))))
                .all().get();
            for (String name : List.of(topic, dlq)) {
                try {
                    admin.createTopics(List.of(new NewTopic(name, Optional.of(3), Optional.empty()))).all().get();
                } catch (ExecutionException e) {
                    if (!(e.getCause() instanceof TopicExistsException)) throw e;
                }
            }
            String principal = "User:" + partner;
            List<AclBinding> acls = new ArrayList<>();
            // LITERAL patterns only: a prefix ACL on `partner.events.a` would also cover partner `ab`'s topic.
            for (AclOperation op : List.of(AclOperation.WRITE, AclOperation.DESCRIBE)) acls.add(allow(ResourceType.TOPIC, topic, principal, op));
            for (AclOperation op : List.of(AclOperation.READ, AclOperation.DESCRIBE)) acls.add(allow(ResourceType.TOPIC, dlq, principal, op));
            acls.add(allow(ResourceType.GROUP, group, principal, AclOperation.READ));
            admin.createAcls(acls).all().get();
        }
        System.out.println("partner " + partner + ": writes " + topic + ", reads " + dlq + " (group " + group + ")");
    }

    private static AclBinding allow(ResourceType type, String name, String principal, AclOperation op) {
        return new AclBinding(new ResourcePattern(type, name, PatternType.LITERAL),
                              new AccessControlEntry(principal, "*", op, AclPermissionType.ALLOW));
    }
}
