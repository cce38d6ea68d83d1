package io.lockstep.jobs;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.lockstep.conf.Compression;
import io.lockstep.conf.Transport;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The synchronization benchmark against a real server: it checks every sum it times. */
@Timeout(120)
class SyncBenchmarkTest {
  @Test
  void shouldTimeEveryIterationAndPrintOneLine() throws Exception {
    final SyncBenchmark.Result result =
        SyncBenchmark.run(
            new SyncBenchmark.Settings(
                300_000, 3, 4, 1, Transport.IPC, 65_408, 1 << 20, 2, Compression.NONE, true));
    assertEquals(4, result.millis().length);
    for (double millis : result.millis()) {
      assertTrue(millis > 0, "iteration time " + millis);
    }
    assertTrue(result.quantileMillis(0) <= result.medianMillis());
    assertTrue(result.medianMillis() <= result.quantileMillis(1));
    final String line = result.line();
    assertTrue(line.contains("median_ms="), line);
    assertTrue(line.contains("workers=3 (threads"), line);
    assertTrue(line.contains("params=300000 bytes=1200000"), line);
    assertTrue(line.contains("shards=2 (threads)"), line);
  }

  @Test
  void shouldNameTheFlagsOfAChunkTooLargeForTheTerm() {
    final IllegalArgumentException e =
        assertThrows(
            IllegalArgumentException.class,
            () ->
                new SyncBenchmark.Settings(
                    1000, 2, 1, 0, Transport.IPC, 4 << 20, 16 << 20, 1, Compression.NONE, true));
    assertTrue(e.getMessage().startsWith("--chunk-size/--term-length: "), e.getMessage());
  }

  @Test
  void shouldNameTheFlagOfMoreShardsThanChunks() {
    final IllegalArgumentException e =
        assertThrows(
            IllegalArgumentException.class,
            () ->
                new SyncBenchmark.Settings(
                    1000, 2, 1, 0, Transport.IPC, 65_408, 1 << 20, 2, Compression.NONE, true));
    assertTrue(
        e.getMessage().startsWith("--shards: 2 shards for a gradient of 1 chunks"), e.getMessage());
  }
}
