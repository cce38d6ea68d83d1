package io.lockstep.worker;

import io.lockstep.models.StatisticsReducer;
import io.lockstep.ps.client.GradientExchange;
import java.nio.ByteOrder;
import org.agrona.BufferUtil;
import org.agrona.concurrent.UnsafeBuffer;

/**
 * SyncBatchNorm's statistics summed through the parameter server: each call is one round of the
 * current step, numbered from 0.
 */
final class ExchangedStatistics implements StatisticsReducer {
  private final GradientExchange exchange;
  private UnsafeBuffer buffer = new UnsafeBuffer(BufferUtil.allocateDirectAligned(1024, 64));
  private long step;
  private int round;
  private int globalBatchSize;

  ExchangedStatistics(GradientExchange exchange) {
    this.exchange = exchange;
  }

  /**
   * Starts a step: the rounds that follow belong to it.
   *
   * @param step the global step of the gradient exchange that ends it
   * @param globalBatchSize the samples of the step's global batch
   */
  void beginStep(long step, int globalBatchSize) {
    this.step = step;
    this.round = 0;
    this.globalBatchSize = globalBatchSize;
  }

  @Override
  public void sum(float[] values) {
    final int bytes = values.length * Float.BYTES;
    if (buffer.capacity() < bytes) {
      buffer =
          new UnsafeBuffer(BufferUtil.allocateDirectAligned(Integer.highestOneBit(bytes) * 2, 64));
    }
    for (int i = 0; i < values.length; i++) {
      buffer.putFloat(i * Float.BYTES, values[i], ByteOrder.LITTLE_ENDIAN);
    }
    exchange.reduceStatistics(step, round++, buffer, values.length);
    for (int i = 0; i < values.length; i++) {
      values[i] = buffer.getFloat(i * Float.BYTES, ByteOrder.LITTLE_ENDIAN);
    }
  }

  @Override
  public int globalBatchSize() {
    return globalBatchSize;
  }
}
