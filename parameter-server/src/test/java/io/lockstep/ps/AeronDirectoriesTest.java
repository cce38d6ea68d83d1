package io.lockstep.ps;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.aeron.driver.MediaDriver;
import io.lockstep.protocol.AeronDirectories;
import io.lockstep.protocol.MediaDrivers;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.stream.Stream;
import org.agrona.IoUtil;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Aeron directories of dead processes are removed, live ones never: real shard processes, one
 * killed with SIGKILL (its driver cannot remove its directory) and one stopped with SIGTERM (its
 * shutdown removes it).
 */
class AeronDirectoriesTest {
  @Test
  void shouldRemoveOnlyTheDirectoriesOfDeadProcesses(@TempDir Path logs) throws Exception {
    final Path secret = ParameterServerTest.secretFile(logs, ParameterServerTest.secret(11));
    final Path killedLog = logs.resolve("killed.log");
    final Path liveLog = logs.resolve("live.log");
    final Path unstarted =
        AeronDirectories.base().resolve("lockstep-test-unstarted-" + UUID.randomUUID());
    final Path abandoned =
        AeronDirectories.base().resolve("lockstep-test-abandoned-" + UUID.randomUUID());
    final List<Process> processes = new ArrayList<>();
    try {
      final int killedPort = 44000 + (int) (Math.random() * 1000) * 4;
      final int livePort = killedPort + 2;
      final Process killed = ParameterServerTest.shardProcess(killedPort, killedLog, secret);
      processes.add(killed);
      final Process live = ParameterServerTest.shardProcess(livePort, liveLog, secret);
      processes.add(live);
      final Path killedDirectory = shardDirectory(killedPort);
      final Path liveDirectory = shardDirectory(livePort);
      // a directory being made (no control file yet) and one left half made long ago
      Files.createDirectories(unstarted);
      Files.createDirectories(abandoned);
      Files.setLastModifiedTime(
          abandoned,
          FileTime.from(Instant.now().minus(AeronDirectories.UNSTARTED_AGE).minusSeconds(60)));

      killed.destroyForcibly().waitFor();
      assertTrue(Files.isDirectory(killedDirectory), "SIGKILL leaves the directory behind");
      // its control file names a dead process at once; the driver timeout is what it waits for
      final List<Path> removed = new ArrayList<>();
      final long deadline =
          System.nanoTime() + AeronDirectories.DRIVER_TIMEOUT.multipliedBy(3).toNanos();
      while (Files.exists(killedDirectory) && System.nanoTime() < deadline) {
        removed.addAll(AeronDirectories.removeStale(AeronDirectories.base()));
        Thread.sleep(500);
      }
      assertFalse(Files.exists(killedDirectory), "the killed process's directory is gone");
      assertTrue(removed.contains(killedDirectory), removed.toString());
      assertTrue(removed.contains(abandoned), removed.toString());
      assertTrue(Files.isDirectory(liveDirectory), "a live process's directory is left alone");
      assertTrue(Files.isDirectory(unstarted), "a directory being made is left alone");
      assertTrue(live.isAlive(), "the live shard process still runs");

      // a driver launched here cleans up first too: stop the live one by SIGTERM, then launch
      live.destroy();
      assertTrue(live.waitFor(60, java.util.concurrent.TimeUnit.SECONDS));
      assertFalse(Files.exists(liveDirectory), "SIGTERM's shutdown removes the directory");
      final Path own = AeronDirectories.base().resolve("lockstep-test-own-" + UUID.randomUUID());
      try (MediaDriver driver = MediaDrivers.launch(own.toString(), 1 << 16, false)) {
        assertTrue(Files.isDirectory(own));
        // its user's alone: no other user reads a term or writes a frame
        try (Stream<Path> inside = Files.walk(own)) {
          for (Path path : (Iterable<Path>) inside::iterator) {
            assertEquals(
                Files.isDirectory(path) ? "rwx------" : "rw-------",
                PosixFilePermissions.toString(Files.getPosixFilePermissions(path)),
                path.toString());
          }
        }
        assertEquals(
            List.of(),
            AeronDirectories.removeStale(AeronDirectories.base()).stream()
                .filter(own::equals)
                .toList(),
            "its own directory is not stale");
      }
      assertFalse(Files.exists(own), "a driver's close removes its directory");
    } finally {
      processes.forEach(Process::destroyForcibly);
      for (Process process : processes) {
        process.waitFor();
      }
      IoUtil.delete(unstarted.toFile(), true);
      IoUtil.delete(abandoned.toFile(), true);
      AeronDirectories.removeStale(AeronDirectories.base());
    }
  }

  /** The directory of the shard process listening on {@code port}. */
  private static Path shardDirectory(int port) throws Exception {
    try (Stream<Path> entries = Files.list(AeronDirectories.base())) {
      final List<Path> found =
          entries
              .filter(p -> p.getFileName().toString().startsWith("lockstep-shard-" + port + "-"))
              .toList();
      assertEquals(1, found.size(), "directories of the shard on port " + port + ": " + found);
      return found.get(0);
    }
  }
}
