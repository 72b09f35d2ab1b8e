// BrokerRequests prints a Kafka broker's request counters, for
// BenchmarkEndToEnd's DRIFTLINE_BENCH_JMX knob: it attaches to the
// broker's JVM (pid, first argument), starts its local JMX agent if it
// is not running, and prints one line per request type and metric:
// "<request> <metric> <count> <sum>", where metric is RequestsPerSec
// (sum 0), RequestBytes (bytes), LocalTimeMs (ms at the request
// handler) or TotalTimeMs, and sum is the histogram's mean times its
// count (Yammer histograms keep an exact running sum).
//
//	java cmd/driftline/testdata/BrokerRequests.java <pid>
import com.sun.tools.attach.VirtualMachine;
import javax.management.MBeanServerConnection;
import javax.management.ObjectName;
import javax.management.remote.JMXConnectorFactory;
import javax.management.remote.JMXServiceURL;

public class BrokerRequests {
    public static void main(String[] args) throws Exception {
        VirtualMachine vm = VirtualMachine.attach(args[0]);
        String addr = vm.startLocalManagementAgent();
        vm.detach();
        try (var c = JMXConnectorFactory.connect(new JMXServiceURL(addr))) {
            MBeanServerConnection s = c.getMBeanServerConnection();
            for (String metric : new String[] {"RequestsPerSec", "RequestBytes", "LocalTimeMs", "TotalTimeMs"}) {
                for (ObjectName n : s.queryNames(new ObjectName("kafka.network:type=RequestMetrics,name=" + metric + ",*"), null)) {
                    String req = n.getKeyProperty("request");
                    String ver = n.getKeyProperty("version");
                    long count = ((Number) s.getAttribute(n, "Count")).longValue();
                    double sum = 0;
                    if (!metric.equals("RequestsPerSec")) {
                        sum = ((Number) s.getAttribute(n, "Mean")).doubleValue() * count;
                    }
                    System.out.printf("%s%s %s %d %.1f%n", req, ver == null ? "" : "/v" + ver, metric, count, sum);
                }
            }
        }
    }
}
