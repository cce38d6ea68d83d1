package io.lockstep.protocol;

import java.time.Instant;

/**
 * The clock of the run's timeline: the wall clock in microseconds since the epoch, read through the
 * monotonic clock, so it is cheap, never goes back, and agrees with every other JVM on the host to
 * the wall clock's precision.
 */
public final class TraceClock {

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

  private TraceClock() {}

  private static long epochMicros(Instant now) {
    return now.getEpochSecond() * 1_000_000 + now.getNano() / 1000;
  }
}
