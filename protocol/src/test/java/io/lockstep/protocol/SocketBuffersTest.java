package io.lockstep.protocol;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SocketBuffersTest {
  @TempDir Path folder;

  @Test
  void shouldAskForTwoMebibytesWhereTheKernelAllowsThem() throws Exception {
    final Path ceiling = Files.writeString(folder.resolve("wmem_max"), "4194304\n");

    assertEquals(2 << 20, SocketBuffers.size(ceiling, "net.core.wmem_max", 0, true));
  }

  @Test
  void shouldAskForNoMoreThanTheKernelsCeiling() throws Exception {
    final Path ceiling = Files.writeString(folder.resolve("wmem_max"), "212992\n");

    assertEquals(212_992, SocketBuffers.size(ceiling, "net.core.wmem_max", 0, true));
  }

  @Test
  void shouldFallBackWhereTheCeilingCannotBeRead() throws Exception {
    assertEquals(0, SocketBuffers.size(folder.resolve("absent"), "net.core.wmem_max", 0, true));
    final Path garbled = Files.writeString(folder.resolve("rmem_max"), "lots");
    assertEquals(131_072, SocketBuffers.size(garbled, "net.core.rmem_max", 131_072, true));
  }

  @Test
  void shouldGiveTheReceiveWindowAtLeastWhateverTheCeiling() {
    final int window = 131_072;

    final int bytes = SocketBuffers.receiveBytes(window, false);

    assertTrue(bytes >= window && bytes <= SocketBuffers.WANTED_BYTES, "got " + bytes);
  }

  @Test
  void shouldLaunchADriverWhoseSocketsHoldEveryWorkersWindow() throws Exception {
    try (var driver = MediaDrivers.launch(folder.resolve("aeron").toString(), 1 << 16, true)) {
      assertEquals(SocketBuffers.sendBytes(false), driver.context().socketSndbufLength());
      assertEquals(
          SocketBuffers.receiveBytes(
              io.aeron.driver.Configuration.INITIAL_WINDOW_LENGTH_DEFAULT, false),
          driver.context().socketRcvbufLength());
    }
  }
}
