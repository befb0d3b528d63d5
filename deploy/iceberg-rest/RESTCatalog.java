// Apache Iceberg's REST catalog test server (iceberg-core's RESTCatalogAdapter and RESTCatalogServlet, as the
// apache/iceberg-rest-fixture image runs them) over a JdbcCatalog on SQLite, on 127.0.0.1 only. Run by rest.sh as a
// single-file program:  java -cp JARS RESTCatalog.java PORT JDBC_URI WAREHOUSE
// With MINIPIPE_S3_ENDPOINT (and AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION) in its environment it writes
// s3:// and s3a:// locations through Hadoop's S3A on that endpoint, path-style.
import java.net.InetSocketAddress;
import java.util.HashMap;
import java.util.Map;
import org.apache.hadoop.conf.Configuration;
import org.apache.iceberg.CatalogUtil;
import org.apache.iceberg.catalog.Catalog;
import org.apache.iceberg.jdbc.JdbcCatalog;
import org.apache.iceberg.rest.RESTCatalogAdapter;
import org.apache.iceberg.rest.RESTCatalogServlet;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.servlet.ServletContextHandler;
import org.eclipse.jetty.servlet.ServletHolder;

public class RESTCatalog {
  public static void main(String[] args) throws Exception {
    Map<String, String> props = new HashMap<>();
    props.put("catalog-impl", JdbcCatalog.class.getName());
    props.put("uri", args[1]);
    props.put("jdbc.schema-version", "V1");
    props.put("warehouse", args[2]);
    Configuration conf = new Configuration();
    String s3 = System.getenv("MINIPIPE_S3_ENDPOINT");
    if (s3 != null && !s3.isEmpty()) {
      conf.set("fs.s3.impl", "org.apache.hadoop.fs.s3a.S3AFileSystem");
      conf.set("fs.s3a.endpoint", s3);
      String region = System.getenv("AWS_REGION");
      conf.set("fs.s3a.endpoint.region", region == null || region.isEmpty() ? "us-east-1" : region);
      conf.set("fs.s3a.path.style.access", "true");
      conf.set("fs.s3a.connection.ssl.enabled", String.valueOf(s3.startsWith("https:")));
      conf.set("fs.s3a.aws.credentials.provider", "software.amazon.awssdk.auth.credentials.EnvironmentVariableCredentialsProvider");
      conf.set("fs.s3a.attempts.maximum", "3");
      conf.set("fs.s3a.retry.limit", "3");
    }
    Catalog catalog = CatalogUtil.buildIcebergCatalog("rest_backend", props, conf);
    ServletContextHandler context = new ServletContextHandler(ServletContextHandler.NO_SESSIONS);
    context.addServlet(new ServletHolder(new RESTCatalogServlet(new RESTCatalogAdapter(catalog))), "/*");
    Server server = new Server(new InetSocketAddress("127.0.0.1", Integer.parseInt(args[0])));
    server.setHandler(context);
    server.start();
    System.out.println("iceberg REST catalog listening on 127.0.0.1:" + args[0]);
    server.join();
  }
}
