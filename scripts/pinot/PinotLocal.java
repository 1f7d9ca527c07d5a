// Launcher used by scripts/pinot.sh: runs a single-node Apache Pinot in ONE JVM.
//
//   java -cp "$LIBS/*" scripts/pinot/PinotLocal.java ZOO_CFG ZK_PORT PINOT_ADMIN_ARGS...
//
// It starts the real ZooKeeper server (org.apache.zookeeper.server.ZooKeeperServerMain,
// configured by ZOO_CFG) on a thread, waits until it answers "ruok", then hands the
// remaining arguments to Pinot's own org.apache.pinot.tools.admin.PinotAdministrator
// (scripts/pinot.sh passes "StartServiceManager ... -bootstrapConfigPaths
// controller.conf broker.conf server.conf"), which starts controller, broker and
// server in this JVM. Any start-up failure ends the JVM with a non-zero exit code.
// Run in Java's single-file source mode: nothing to build.

import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.Watcher;
import org.apache.zookeeper.ZooKeeper;
import org.apache.zookeeper.server.ServerConfig;
import org.apache.zookeeper.server.ZooKeeperServerMain;

public class PinotLocal {
  public static void main(String[] args) throws Exception {
    if (args.length < 3) {
      System.err.println("usage: PinotLocal ZOO_CFG ZK_PORT PINOT_ADMIN_ARGS...");
      System.exit(2);
    }
    // ZooKeeper 3.5: no Jetty admin server, no log4j-1 JMX beans (log4j2 bridge only).
    System.setProperty("zookeeper.admin.enableServer", "false");
    System.setProperty("zookeeper.jmx.log4j.disable", "true");
    System.setProperty("zookeeper.4lw.commands.whitelist", "ruok,srvr,stat,mntr");
    // PinotAdministrator exits with the command's status when it fails.
    System.setProperty("pinot.admin.system.exit", "true");

    ServerConfig zkConfig = new ServerConfig();
    zkConfig.parse(args[0]);
    int zkPort = Integer.parseInt(args[1]);
    Thread zk = new Thread(() -> {
      try {
        new ZooKeeperServerMain().runFromConfig(zkConfig);
      } catch (Throwable t) {
        t.printStackTrace();
        System.err.println("PinotLocal: ZooKeeper failed; exiting");
        Runtime.getRuntime().halt(3);
      }
    }, "vigil-zookeeper");
    zk.setDaemon(true);
    zk.start();

    long deadline = System.currentTimeMillis() + 60_000;
    while (!zkAnswers(zkPort)) {
      if (System.currentTimeMillis() > deadline) {
        System.err.println("PinotLocal: ZooKeeper did not answer on 127.0.0.1:" + zkPort + " within 60 s");
        System.exit(3);
      }
      Thread.sleep(100);
    }
    System.err.println("PinotLocal: ZooKeeper is up on 127.0.0.1:" + zkPort);

    String cluster = System.getProperty("vigil.pinot.cluster");
    if (cluster != null) {
      removeStaleLiveNodes(zkPort, cluster);
    }

    org.apache.pinot.tools.admin.PinotAdministrator.main(Arrays.copyOfRange(args, 2, args.length));
    // Returns once the services are started; their non-daemon threads keep the JVM alive.
    // SIGTERM runs Pinot's shutdown hook (stops server, broker, controller).
    System.err.println("PinotLocal: Pinot services started");
  }

  /**
   * This ZooKeeper lives in this JVM, so right after it starts no Pinot instance is
   * alive. After a crash (kill -9) ZooKeeper still restores the dead JVM's sessions,
   * and their ephemeral nodes (live instances, controller leader) would make Helix
   * wait for them to expire (session timeout + 5 s, once per role, ~70 s in total).
   * Deleting them now is what that expiry would do. After a clean stop there is
   * nothing to delete.
   */
  private static void removeStaleLiveNodes(int zkPort, String cluster) throws Exception {
    CountDownLatch connected = new CountDownLatch(1);
    ZooKeeper zk = new ZooKeeper("127.0.0.1:" + zkPort, 30_000, event -> {
      if (event.getState() == Watcher.Event.KeeperState.SyncConnected) {
        connected.countDown();
      }
    });
    try {
      if (!connected.await(30, TimeUnit.SECONDS)) {
        throw new IllegalStateException("could not connect to ZooKeeper on 127.0.0.1:" + zkPort);
      }
      String live = "/" + cluster + "/LIVEINSTANCES";
      List<String> stale = new ArrayList<>();
      try {
        for (String child : zk.getChildren(live, false)) {
          stale.add(live + "/" + child);
        }
      } catch (KeeperException.NoNodeException e) {
        // new cluster
      }
      stale.add("/" + cluster + "/CONTROLLER/LEADER");
      for (String path : stale) {
        try {
          zk.delete(path, -1);
          System.err.println("PinotLocal: removed stale ZooKeeper node " + path + " (left by a crashed run)");
        } catch (KeeperException.NoNodeException e) {
          // nothing stale
        }
      }
    } finally {
      zk.close();
    }
  }

  private static boolean zkAnswers(int port) {
    try (Socket s = new Socket()) {
      s.connect(new InetSocketAddress("127.0.0.1", port), 1000);
      s.setSoTimeout(2000);
      OutputStream out = s.getOutputStream();
      out.write("ruok".getBytes(StandardCharsets.US_ASCII));
      out.flush();
      InputStream in = s.getInputStream();
      byte[] buf = new byte[4];
      int n = in.readNBytes(buf, 0, 4);
      return n == 4 && "imok".equals(new String(buf, StandardCharsets.US_ASCII));
    } catch (Exception e) {
      return false;
    }
  }
}
