package io.lockstep.ps.client;

import org.agrona.concurrent.UnsafeBuffer;

/**
 * What a worker's exchange has open: a step's gradient, or a statistics round, and what of its
 * answer has come. The shards' proxies read it to write their frames' headers, the adapters write
 * the answers into it; all under the exchange's lock while a step overlaps the backward pass.
 */
final class ExchangeStep {
  final int rank;

  /** The vector the answer goes into: the step's gradient, or the round's statistics. */
  UnsafeBuffer target;

  long step;

  /** Between {@code begin} and the end of {@code finish}. */
  boolean open;

  int sampleCount;
  byte flags;

  /** The open statistics round, or -1. */
  int statisticsRound = -1;

  int statisticsBytes;
  boolean statisticsReceived;

  /** The step's sample count over all workers, from the answers; -1 until one came. */
  int totalSamples;

  /** Whether {@code finish} has sent everything and waits: decoding is timed then. */
  boolean awaiting;

  /** Time spent decoding answer chunks while {@link #awaiting}. */
  long decodeNs;

  /** A shard's abort, for the training thread to throw. */
  String abortReason;

  /**
   * Result frames dropped: malformed, another job's, with a wrong tag, or not awaited (a replay).
   */
  long rejectedFrames;

  ExchangeStep(int rank) {
    this.rank = rank;
  }
}
