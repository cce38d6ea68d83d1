package io.lockstep.worker;

import io.lockstep.conf.JobConfig;
import io.lockstep.conf.Keys;
import io.lockstep.data.SliceSpan;
import io.lockstep.protocol.ServerShards;
import java.io.Serializable;

/**
 * One barrier stage: every worker trains steps {@code [fromStep, toStep)} of one epoch. Plain
 * values shipped from the driver to the executors.
 *
 * @param job the job
 * @param state the replica every worker starts the stage from, fetched only by a worker that does
 *     not hold it already
 * @param server the parameter server's shards to synchronize through
 * @param workers the stage's workers: the job's, or fewer after some were lost, each computing the
 *     slices {@link SliceSpan#of} gives it
 * @param epoch the epoch, from 0
 * @param stepsPerEpoch the steps of every epoch; global step = epoch x stepsPerEpoch + step
 * @param fromStep the first step of the epoch to train
 * @param toStep one past the last step; the stage ends the epoch when it equals stepsPerEpoch
 */
public record StageTask(
    JobConfig job,
    StateSource state,
    ServerShards server,
    int workers,
    int epoch,
    int stepsPerEpoch,
    int fromStep,
    int toStep)
    implements Serializable {

  /**
   * @throws IllegalArgumentException for more workers than the job's, or fewer where the job cannot
   *     shrink ({@link JobConfig#shrinkRefusal})
   */
  public StageTask {
    if (workers < 1 || workers > job.get(Keys.WORKERS)) {
      throw new IllegalArgumentException(
          workers + " workers for a job of " + job.get(Keys.WORKERS) + " slices");
    }
    if (workers < job.get(Keys.WORKERS) && job.shrinkRefusal() != null) {
      throw new IllegalArgumentException(
          workers + " workers for a job of " + job.get(Keys.WORKERS) + ": " + job.shrinkRefusal());
    }
  }

  /**
   * @return the number of steps the stage trains
   */
  public int steps() {
    return toStep - fromStep;
  }

  /**
   * @return the global step number of the stage's first step
   */
  public long firstGlobalStep() {
    return (long) epoch * stepsPerEpoch + fromStep;
  }

  /**
   * @return whether the stage trains the epoch's last step
   */
  boolean endsEpoch() {
    return toStep == stepsPerEpoch;
  }
}
