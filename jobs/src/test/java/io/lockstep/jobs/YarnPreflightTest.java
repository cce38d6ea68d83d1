package io.lockstep.jobs;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.lockstep.conf.ConfigurationException;
import java.io.IOException;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** What {@code submit --master yarn} checks before spark-submit starts. */
class YarnPreflightTest {

  @Test
  void shouldNameTheVariableWhenNoConfigurationFolderIsSet() {
    final ConfigurationException e =
        assertThrows(
            ConfigurationException.class, () -> YarnPreflight.configurationDirectories(Map.of()));
    assertTrue(e.getMessage().contains("set HADOOP_CONF_DIR"), e.getMessage());
  }

  @Test
  void shouldRefuseAFolderThatIsMissingOrHasNoYarnSite(@TempDir Path tmp) throws IOException {
    final Path missing = tmp.resolve("missing");
    final ConfigurationException notFolder =
        assertThrows(
            ConfigurationException.class,
            () ->
                YarnPreflight.configurationDirectories(
                    Map.of("YARN_CONF_DIR", missing.toString())));
    assertTrue(
        notFolder.getMessage().startsWith("YARN_CONF_DIR=" + missing), notFolder.getMessage());
    final Path empty = Files.createDirectories(tmp.resolve("empty"));
    final ConfigurationException noSite =
        assertThrows(
            ConfigurationException.class,
            () ->
                YarnPreflight.configurationDirectories(
                    Map.of("HADOOP_CONF_DIR", empty.toString())));
    assertTrue(
        noSite.getMessage().startsWith("HADOOP_CONF_DIR=" + empty + ": no yarn-site.xml"),
        noSite.getMessage());
  }

  @Test
  void shouldTakeBothFoldersInSparksOrder(@TempDir Path tmp) throws IOException {
    final Path hadoop = Files.createDirectories(tmp.resolve("hadoop"));
    final Path yarn = Files.createDirectories(tmp.resolve("yarn"));
    Files.writeString(yarn.resolve("yarn-site.xml"), "<configuration/>");
    assertEquals(
        List.of(hadoop, yarn),
        YarnPreflight.configurationDirectories(
            Map.of("HADOOP_CONF_DIR", hadoop.toString(), "YARN_CONF_DIR", yarn.toString())));
  }

  @Test
  void shouldNameTheAddressOfAResourceManagerThatDoesNotAnswer(@TempDir Path tmp)
      throws IOException {
    final int closed = closedPort();
    final Path conf = Files.createDirectories(tmp.resolve("conf"));
    writeResourceManager(conf, "127.0.0.1:" + closed);
    final ConfigurationException e =
        assertThrows(
            ConfigurationException.class, () -> YarnPreflight.checkResourceManager(List.of(conf)));
    assertTrue(
        e.getMessage().startsWith("no YARN ResourceManager answers at 127.0.0.1:" + closed),
        e.getMessage());
  }

  @Test
  void shouldAcceptAResourceManagerThatAnswers(@TempDir Path tmp) throws IOException {
    try (ServerSocket listening = new ServerSocket(0)) {
      final Path conf = Files.createDirectories(tmp.resolve("conf"));
      writeResourceManager(conf, "127.0.0.1:" + listening.getLocalPort());
      YarnPreflight.checkResourceManager(List.of(conf));
    }
  }

  @Test
  void shouldFindTheAddressFromTheHostNameAsHadoopDoes(@TempDir Path tmp) throws IOException {
    final Path conf = Files.createDirectories(tmp.resolve("conf"));
    writeSite(conf, Map.of("yarn.resourcemanager.hostname", "127.0.0.1"));
    // yarn-default.xml's ${yarn.resourcemanager.hostname}:8032, where nothing listens here
    final ConfigurationException e =
        assertThrows(
            ConfigurationException.class, () -> YarnPreflight.checkResourceManager(List.of(conf)));
    assertTrue(
        e.getMessage().startsWith("no YARN ResourceManager answers at 127.0.0.1:8032"),
        e.getMessage());
  }

  @Test
  void shouldNameAHostThatDoesNotResolve(@TempDir Path tmp) throws IOException {
    final Path conf = Files.createDirectories(tmp.resolve("conf"));
    writeResourceManager(conf, "no-such-host.invalid:8032");
    final ConfigurationException e =
        assertThrows(
            ConfigurationException.class, () -> YarnPreflight.checkResourceManager(List.of(conf)));
    assertTrue(
        e.getMessage().contains("no-such-host.invalid:8032 (the host name does not resolve)"),
        e.getMessage());
  }

  @Test
  void shouldAcceptAnyResourceManagerOfAnHaPairAndRefuseHaWithoutIds(@TempDir Path tmp)
      throws IOException {
    final int closed = closedPort();
    try (ServerSocket standby = new ServerSocket(0)) {
      final Path conf = Files.createDirectories(tmp.resolve("ha"));
      writeSite(
          conf,
          Map.of(
              "yarn.resourcemanager.ha.enabled",
              "true",
              "yarn.resourcemanager.ha.rm-ids",
              "rm1,rm2",
              "yarn.resourcemanager.address.rm1",
              "127.0.0.1:" + closed,
              "yarn.resourcemanager.address.rm2",
              "127.0.0.1:" + standby.getLocalPort()));
      YarnPreflight.checkResourceManager(List.of(conf));
    }
    final Path noIds = Files.createDirectories(tmp.resolve("no-ids"));
    writeSite(noIds, Map.of("yarn.resourcemanager.ha.enabled", "true"));
    final ConfigurationException e =
        assertThrows(
            ConfigurationException.class, () -> YarnPreflight.checkResourceManager(List.of(noIds)));
    assertTrue(e.getMessage().contains("but no yarn.resourcemanager.ha.rm-ids"), e.getMessage());
  }

  private static int closedPort() throws IOException {
    try (ServerSocket socket = new ServerSocket(0)) {
      return socket.getLocalPort();
    }
  }

  private static void writeResourceManager(Path conf, String address) throws IOException {
    writeSite(conf, Map.of("yarn.resourcemanager.address", address));
  }

  private static void writeSite(Path conf, Map<String, String> properties) throws IOException {
    final StringBuilder xml = new StringBuilder("<configuration>");
    properties.forEach(
        (name, value) ->
            xml.append("<property><name>")
                .append(name)
                .append("</name><value>")
                .append(value)
                .append("</value></property>"));
    Files.writeString(conf.resolve("yarn-site.xml"), xml.append("</configuration>"));
  }
}
