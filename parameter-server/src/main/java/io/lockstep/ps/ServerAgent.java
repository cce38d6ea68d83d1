package io.lockstep.ps;

import io.lockstep.protocol.ShardSpan;
import java.util.Collection;
import org.agrona.concurrent.Agent;

/**
 * The duty cycle that serves one shard of a job: {@link AggregationAgent} sums every step in rank
 * order, {@link AsyncAgent} adds each worker's update as it comes. Single-threaded; the accessors
 * are read from other threads.
 */
interface ServerAgent extends Agent {
  /**
   * @return the first step plus the steps the shard has answered every worker
   */
  long stepsCompleted();

  /**
   * Moves the spans of the steps completed since the last call into {@code into}; an asynchronous
   * shard has no steps in common to record.
   *
   * @param into where they go, oldest first
   */
  default void drainSpans(Collection<ShardSpan> into) {}

  /**
   * @return frames dropped: another job's, an unknown rank's, a stale step's, malformed ones
   */
  long rejectedFrames();

  /**
   * @return why the shard stopped serving, or null while it serves
   */
  String failure();

  /**
   * @return whether the failure came from a worker that reported it would recur on a retry
   */
  boolean failurePermanent();

  /**
   * Records a failure and tells every worker; later frames are ignored.
   *
   * @param reason what failed, for the workers' errors
   */
  void abort(String reason);
}
