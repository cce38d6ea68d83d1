package io.lockstep.jobs;

import io.lockstep.conf.ConfigurationException;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.yarn.conf.YarnConfiguration;

/**
 * What {@code lockstep submit --master yarn} needs from the machine it runs on, checked before
 * spark-submit starts: the Hadoop configuration folders ({@code HADOOP_CONF_DIR}, {@code
 * YARN_CONF_DIR}), which go on spark-submit's class path as Spark's own launcher puts them, and a
 * ResourceManager that accepts a connection at the address they give. Without this check a wrong
 * folder or a stopped ResourceManager leaves spark-submit retrying for 15 minutes (Hadoop's client
 * default).
 */
final class YarnPreflight {
  /** How long the ResourceManager has to accept a connection. */
  static final int CONNECT_TIMEOUT_MILLIS = 5_000;

  private static final List<String> CONF_DIR_VARIABLES =
      List.of("HADOOP_CONF_DIR", "YARN_CONF_DIR");

  private YarnPreflight() {}

  /**
   * Whether a master URL names YARN.
   *
   * @param master a Spark master URL
   * @return true for {@code yarn}
   */
  static boolean isYarn(String master) {
    return master.equals("yarn");
  }

  /**
   * The Hadoop configuration folders the environment names, in Spark's order, each checked.
   *
   * @param environment the process environment
   * @return one or two folders, at least one of them holding {@code yarn-site.xml}
   * @throws ConfigurationException when none is set, a set one is not a folder, or none holds
   *     {@code yarn-site.xml}
   */
  static List<Path> configurationDirectories(Map<String, String> environment) {
    final List<Path> directories = new ArrayList<>();
    final List<String> named = new ArrayList<>();
    for (String variable : CONF_DIR_VARIABLES) {
      final String value = environment.get(variable);
      if (value == null || value.isEmpty()) {
        continue;
      }
      final Path directory = Path.of(value);
      if (!Files.isDirectory(directory)) {
        throw new ConfigurationException(
            variable
                + "="
                + value
                + ": not a folder; point it at the cluster's Hadoop configuration");
      }
      named.add(variable + "=" + value);
      if (!directories.contains(directory)) {
        directories.add(directory);
      }
    }
    if (directories.isEmpty()) {
      throw new ConfigurationException(
          "--master yarn: set HADOOP_CONF_DIR (or YARN_CONF_DIR) to the folder with the cluster's"
              + " yarn-site.xml and core-site.xml");
    }
    if (directories.stream().noneMatch(d -> Files.isRegularFile(d.resolve("yarn-site.xml")))) {
      throw new ConfigurationException(
          String.join(" and ", named)
              + ": no yarn-site.xml there, so no ResourceManager address; point it at the"
              + " cluster's Hadoop configuration");
    }
    return directories;
  }

  /**
   * Checks that a ResourceManager the configuration names accepts a connection: the one at {@code
   * yarn.resourcemanager.address}, or with HA any of {@code yarn.resourcemanager.ha.rm-ids}, each
   * address found as Hadoop's client finds it (from the host name where no address is set).
   *
   * @param directories the folders of {@link #configurationDirectories}
   * @throws ConfigurationException naming the addresses tried when none answers
   */
  static void checkResourceManager(List<Path> directories) {
    // Hadoop's defaults, then the cluster's files: as spark-submit reads them
    final YarnConfiguration yarn = new YarnConfiguration(new Configuration());
    for (Path directory : directories) {
      for (String file : List.of("core-site.xml", "yarn-site.xml")) {
        final Path path = directory.resolve(file);
        if (Files.isRegularFile(path)) {
          yarn.addResource(new org.apache.hadoop.fs.Path(path.toUri()));
        }
      }
    }
    final List<YarnConfiguration> candidates = new ArrayList<>();
    if (yarn.getBoolean(YarnConfiguration.RM_HA_ENABLED, YarnConfiguration.DEFAULT_RM_HA_ENABLED)) {
      final Collection<String> ids = yarn.getTrimmedStringCollection(YarnConfiguration.RM_HA_IDS);
      if (ids.isEmpty()) {
        throw new ConfigurationException(
            YarnConfiguration.RM_HA_ENABLED
                + "=true but no "
                + YarnConfiguration.RM_HA_IDS
                + " in "
                + directories
                + "; list the ResourceManagers' ids");
      }
      for (String id : ids) {
        final YarnConfiguration one = new YarnConfiguration(yarn);
        one.set(YarnConfiguration.RM_HA_ID, id);
        candidates.add(one);
      }
    } else {
      candidates.add(yarn);
    }
    final List<String> tried = new ArrayList<>();
    for (YarnConfiguration candidate : candidates) {
      final InetSocketAddress address =
          candidate.getSocketAddr(
              YarnConfiguration.RM_ADDRESS,
              YarnConfiguration.DEFAULT_RM_ADDRESS,
              YarnConfiguration.DEFAULT_RM_PORT);
      final String where = address.getHostString() + ":" + address.getPort();
      if (address.isUnresolved()) {
        tried.add(where + " (the host name does not resolve)");
      } else if (answers(address)) {
        return;
      } else {
        tried.add(where);
      }
    }
    throw new ConfigurationException(
        "no YARN ResourceManager answers at "
            + String.join(", ", tried)
            + " ("
            + YarnConfiguration.RM_ADDRESS
            + " from "
            + directories
            + "); start it, or point HADOOP_CONF_DIR at the running cluster's configuration");
  }

  private static boolean answers(InetSocketAddress address) {
    try (Socket socket = new Socket()) {
      socket.connect(address, CONNECT_TIMEOUT_MILLIS);
      return true;
    } catch (IOException e) {
      return false;
    }
  }
}
