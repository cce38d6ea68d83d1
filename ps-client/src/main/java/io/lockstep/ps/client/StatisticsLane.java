package io.lockstep.ps.client;

import io.lockstep.protocol.ServerAddress;
import org.agrona.concurrent.UnsafeBuffer;

/**
 * SyncBatchNorm's lane: a small vector summed over the workers within a step, before its gradient,
 * as one frame to shard 0 and one sum back. Every worker makes the same rounds with the same
 * lengths in the same order; the server adds them in rank order.
 */
final class StatisticsLane {
  private final ExchangeStep open;
  private final ShardProxy proxy;

  StatisticsLane(ExchangeStep open, ShardProxy proxy) {
    this.open = open;
    this.proxy = proxy;
  }

  /**
   * Opens a round and sends this worker's values.
   *
   * @param step the step the gradient exchange that follows will carry
   * @param round the round within the step, counted from 0
   * @param values {@code length} little-endian floats from offset 0; the sum replaces them
   * @param length the number of floats, at most the parameter count and one chunk
   */
  void send(long step, int round, UnsafeBuffer values, int length) {
    if (open.open) {
      throw new IllegalStateException(
          "statistics round " + round + " while the gradient of step " + open.step + " is open");
    }
    final ServerAddress address = proxy.address;
    final int bytes = length * Float.BYTES;
    if (length <= 0 || bytes > address.chunkBytes() || length > address.parameterCount()) {
      throw new IllegalArgumentException(
          "statistics of "
              + length
              + " floats; at most "
              + Math.min(address.chunkBytes() / Float.BYTES, address.parameterCount())
              + " fit in one round");
    }
    open.target = values;
    open.step = step;
    open.statisticsRound = round;
    open.statisticsBytes = bytes;
    open.statisticsReceived = false;
    proxy.sendStatistics(values, bytes);
  }

  /** Whether the open round's sum has come. */
  boolean received() {
    return open.statisticsReceived;
  }

  /** Ends the round, answered or not. */
  void close() {
    open.statisticsRound = -1;
    open.target = null;
  }
}
