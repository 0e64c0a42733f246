// Runs one real Elasticsearch 7.10.2 OSS node (codelibs' runner, jars from `make peers`) for
// logdriver's tests: java -cp 'target/dependency/*' ElasticsearchPeer.java <base dir> <http port>
// Prints "READY <port>" once the cluster is yellow; stops on SIGTERM (the runner's hook).
import org.codelibs.elasticsearch.runner.ElasticsearchClusterRunner;

public class ElasticsearchPeer {
    public static void main(String[] args) throws Exception {
        String basePath = args[0];
        String port = args[1];
        ElasticsearchClusterRunner runner = new ElasticsearchClusterRunner();
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                runner.close();
            } catch (Exception e) {
                e.printStackTrace();
            }
        }));
        runner.onBuild((number, settings) -> {
            settings.put("discovery.type", "single-node");
            settings.put("network.host", "127.0.0.1");
            settings.put("http.port", port);
            settings.put("transport.port", "0");
            settings.put("cluster.routing.allocation.disk.threshold_enabled", "false");
        });
        runner.build(ElasticsearchClusterRunner.newConfigs().numOfNode(1).basePath(basePath).clusterName("logdriver-test"));
        runner.ensureYellow();
        System.out.println("READY " + port);
        System.out.flush();
        Thread.sleep(Long.MAX_VALUE);
    }
}
