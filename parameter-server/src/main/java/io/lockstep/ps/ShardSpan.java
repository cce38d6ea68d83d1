package io.lockstep.ps;

import java.time.Instant;

/**
 * What one shard of a synchronous server did for one step, on the wall clock: from the step's first
 * frame, through the moment every worker's first chunk was in (the wait for the slowest worker), to
 * the last chunk of the sum sent back.
 *
 * @param shard the shard
 * @param step the global step
 * @param startMicros the step's first frame arrived, microseconds since the epoch
 * @param gatheredMicros every worker's first gradient chunk was in
 * @param endMicros the last chunk of the sum was sent
 */
public record ShardSpan(
    int shard, long step, long startMicros, long gatheredMicros, long endMicros) {

  /** {@link System#nanoTime()} at {@link #EPOCH_MICROS}, read once per JVM. */
  private static final long BASE_NANOS = System.nanoTime();

  private static final long EPOCH_MICROS = epochMicros(Instant.now());

  /**
   * The wall clock in microseconds since the epoch, from the monotonic clock: cheap, never goes
   * back, and within the wall clock's precision of every other JVM on the host.
   *
   * @return microseconds since 1970-01-01T00:00Z
   */
  public static long nowMicros() {
    return toMicros(System.nanoTime());
  }

  /**
   * A {@link System#nanoTime()} reading on the wall clock.
   *
   * @param nanoTime a reading of {@link System#nanoTime()} in this JVM
   * @return microseconds since 1970-01-01T00:00Z
   */
  public static long toMicros(long nanoTime) {
    return EPOCH_MICROS + (nanoTime - BASE_NANOS) / 1000;
  }

  private static long epochMicros(Instant now) {
    return now.getEpochSecond() * 1_000_000 + now.getNano() / 1000;
  }
}
