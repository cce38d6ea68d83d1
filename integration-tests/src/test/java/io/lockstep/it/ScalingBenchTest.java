package io.lockstep.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.lockstep.conf.JobConfig;
import io.lockstep.protocol.ServerShards;
import org.junit.jupiter.api.Test;

/** The byte counts behind {@code bench/scaling.sh}'s model. */
class ScalingBenchTest {
  /** fashion-mnist-lenet's parameters. */
  private static final long LENET = 431_080;

  @Test
  void shouldCutChunksOfTheMtusSizeWithTheirHeaders() {
    final long chunkBytes = JobConfig.chunkBytesForMtu(1500, ScalingBench.TERM_LENGTH_BYTES);
    assertEquals(1376, chunkBytes);
    // 1253 full chunks of 344 floats fill 1500-byte datagrams (1514 bytes with Ethernet's header);
    // the last one holds 48 floats: 96 + 192 bytes, already aligned to 32
    assertEquals(1253 * 1514 + 288 + 42, ScalingBench.wireBytes(LENET, chunkBytes, "none"));
    // fp16: the same chunks, each a 4-byte scale and 2 bytes a float, aligned to 32
    assertEquals(
        1253 * (800 + 42) + (96 + 4 + 96 + 28) + 42,
        ScalingBench.wireBytes(LENET, chunkBytes, "fp16"));
  }

  @Test
  void shouldTakeTheBusiestLinkAsTheModel() {
    final double rate = ScalingBench.bytesPerSecond("200mbit");
    assertEquals(25e6, rate);
    final double worker = ScalingBench.wireBytes(LENET, 1376, "none") / rate * 1e3;
    // one shard: its link carries every worker's gradient
    assertEquals(2 * worker, ScalingBench.syncModelMs(LENET, 2, 1, "none", rate), 1e-9);
    // two shards of whole chunks: 627 and 627 chunks, the second with the short last one
    final ServerShards split = ScalingBench.split(LENET, 3, 2, 1376);
    assertEquals(627 * 344, split.shard(0).parameterCount());
    assertEquals(
        3 * ScalingBench.wireBytes(627 * 344, 1376, "none") / rate * 1e3,
        ScalingBench.syncModelMs(LENET, 3, 2, "none", rate),
        1e-9);
    assertThrows(IllegalArgumentException.class, () -> ScalingBench.bytesPerSecond("200"));
  }
}
