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
class YarnClientTest {

  @Test
  void shouldNameTheVariableWhenNoConfigurationFolderIsSet() {
    final ConfigurationException e =
        assertThrows(
            ConfigurationException.class, () -> YarnClient.configurationDirectories(Map.of()));
    assertTrue(e.getMessage().contains("set HADOOP_CONF_DIR"), e.getMessage());
  }

  @Test
  void shouldRefuseAFolderThatIsMissingOrHasNoYarnSite(@TempDir Path tmp) throws IOException {
    final Path missing = tmp.resolve("missing");
    final ConfigurationException notFolder =
        assertThrows(
            ConfigurationException.class,
            () -> YarnClient.configurationDirectories(Map.of("YARN_CONF_DIR", missing.toString())));
    assertTrue(
        notFolder.getMessage().startsWith("YARN_CONF_DIR=" + missing), notFolder.getMessage());
    final Path empty = Files.createDirectories(tmp.resolve("empty"));
    final ConfigurationException noSite =
        assertThrows(
            ConfigurationException.class,
            () -> YarnClient.configurationDirectories(Map.of("HADOOP_CONF_DIR", empty.toString())));
    assertTrue(noSite.getMessage().contains("no yarn-site.xml"), noSite.getMessage());
  }

  @Test
  void shouldTakeBothFoldersInSparksOrder(@TempDir Path tmp) throws IOException {
    final Path hadoop = Files.createDirectories(tmp.resolve("hadoop"));
    final Path yarn = Files.createDirectories(tmp.resolve("yarn"));
    Files.writeString(yarn.resolve("yarn-site.xml"), "<configuration/>");
    assertEquals(
        List.of(hadoop, yarn),
        YarnClient.configurationDirectories(
            Map.of("HADOOP_CONF_DIR", hadoop.toString(), "YARN_CONF_DIR", yarn.toString())));
  }

  @Test
  void shouldNameTheAddressOfAResourceManagerThatDoesNotAnswer(@TempDir Path tmp)
      throws IOException {
    final int closed;
    try (ServerSocket socket = new ServerSocket(0)) {
      closed = socket.getLocalPort();
    }
    final Path conf = Files.createDirectories(tmp.resolve("conf"));
    writeResourceManager(conf, "127.0.0.1:" + closed);
    final ConfigurationException e =
        assertThrows(
            ConfigurationException.class, () -> YarnClient.checkResourceManager(List.of(conf)));
    assertTrue(
        e.getMessage()
            .startsWith(
                "no YARN ResourceManager answers at yarn.resourcemanager.address=127.0.0.1:"
                    + closed),
        e.getMessage());
  }

  @Test
  void shouldAcceptAResourceManagerThatAnswers(@TempDir Path tmp) throws IOException {
    try (ServerSocket listening = new ServerSocket(0)) {
      final Path conf = Files.createDirectories(tmp.resolve("conf"));
      writeResourceManager(conf, "127.0.0.1:" + listening.getLocalPort());
      YarnClient.checkResourceManager(List.of(conf));
    }
  }

  private static void writeResourceManager(Path conf, String address) throws IOException {
    Files.writeString(
        conf.resolve("yarn-site.xml"),
        "<configuration><property><name>yarn.resourcemanager.address</name><value>"
            + address
            + "</value></property></configuration>");
  }
}
