package io.lockstep.driver;

import io.lockstep.run.TrainingSummary;
import io.lockstep.worker.StageReport;

/**
 * The time a run's steps spent in each phase (reading data, computing, synchronizing, applying), in
 * nanoseconds summed over the job's workers. A stage on fewer workers counts their mean for each
 * worker of the job, so the sums stay comparable across shrinks.
 */
final class PhaseTimes {
  private long dataNs;
  private long computeNs;
  private long syncNs;
  private long applyNs;

  private PhaseTimes(long dataNs, long computeNs, long syncNs, long applyNs) {
    this.dataNs = dataNs;
    this.computeNs = computeNs;
    this.syncNs = syncNs;
    this.applyNs = applyNs;
  }

  /** No time yet. */
  static PhaseTimes zero() {
    return new PhaseTimes(0, 0, 0, 0);
  }

  /**
   * The times a checkpoint saved.
   *
   * @param ns data, compute, sync and apply, in that order, as {@link #toArray} writes them
   */
  static PhaseTimes of(long[] ns) {
    if (ns.length != 4) {
      throw new IllegalArgumentException("phase times: 4 values, got " + ns.length);
    }
    return new PhaseTimes(ns[0], ns[1], ns[2], ns[3]);
  }

  /**
   * Adds one worker's report of a stage.
   *
   * @param report the worker's report
   * @param share how many of the job's workers it stands for: the job's workers over the stage's
   */
  void add(StageReport report, double share) {
    dataNs += (long) (report.dataNs() * share);
    computeNs += (long) (report.computeNs() * share);
    syncNs += (long) (report.syncNs() * share);
    applyNs += (long) (report.applyNs() * share);
  }

  /** The four sums, in a checkpoint's order: data, compute, sync, apply. */
  long[] toArray() {
    return new long[] {dataNs, computeNs, syncNs, applyNs};
  }

  /**
   * One worker's mean step time, for a job of {@code workers}.
   *
   * @param workers the job's workers
   * @return seconds of all phases of all steps, per worker
   */
  double secondsPerWorker(int workers) {
    return (dataNs + computeNs + syncNs + applyNs) / (workers * 1e9);
  }

  /**
   * Each phase's seconds per worker, for the summary.
   *
   * @param workers the job's workers
   * @return the phases' seconds per worker
   */
  TrainingSummary.Phases perWorker(int workers) {
    final double ns = workers * 1e9;
    return new TrainingSummary.Phases(dataNs / ns, computeNs / ns, syncNs / ns, applyNs / ns);
  }
}
