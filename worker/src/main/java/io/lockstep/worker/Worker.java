package io.lockstep.worker;

import io.lockstep.conf.JobConfig;
import io.lockstep.data.EpochPlan;
import io.lockstep.data.LabeledImages;
import io.lockstep.data.Mnist;
import io.lockstep.ps.GradientExchange;
import org.nd4j.linalg.factory.Nd4j;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Trains one rank's share of an epoch: for each global batch it computes the gradient on its slice,
 * exchanges it through the parameter server, and applies the same step as every other rank. Has no
 * Spark types: the driver calls it from a barrier task, tests call it from plain threads.
 */
public final class Worker {
  private static final Logger LOG = LoggerFactory.getLogger(Worker.class);
  private static final int PROGRESS_EVERY_STEPS = 50;

  private Worker() {}

  /**
   * Runs one epoch on this rank.
   *
   * @param task the epoch's plan and starting replica
   * @param rank this worker's rank
   * @param workerHost this host's address, as the server can reach it (UDP only)
   * @return timings, loss and the resulting replica's checksum (and snapshot on rank 0)
   */
  public static EpochReport runEpoch(EpochTask task, int rank, String workerHost) {
    final JobConfig job = task.job();
    configureThreads(job.workerThreads());
    final LabeledImages train = Mnist.load(job.dataDir(), Mnist.Split.TRAIN);
    final EpochPlan plan =
        EpochPlan.of(job.seed(), task.epoch(), train.count(), job.batchSize(), job.workers());
    final Batches batches = new Batches(train, job.dataMean(), job.dataStd());
    final Replica replica = Replica.restore(task.state());
    long dataNs = 0;
    long computeNs = 0;
    long syncNs = 0;
    long applyNs = 0;
    long samples = 0;
    double lossSum = 0;
    try (GradientExchange exchange =
        GradientExchange.connect(
            new GradientExchange.Context()
                .address(task.server())
                .rank(rank)
                .workerHost(workerHost)
                .stepTimeout(job.stepTimeout())
                .connectTimeout(job.connectTimeout()))) {
      final long epochStartNs = System.nanoTime();
      int step = 0;
      try {
        for (; step < task.steps(); step++) {
          final long t0 = System.nanoTime();
          final int[] slice = plan.slice(step, rank);
          final boolean empty = slice.length == 0;
          final var features = empty ? null : batches.features(slice);
          final var labels = empty ? null : batches.labels(slice);
          final long t1 = System.nanoTime();
          replica.computeGradients(features, labels);
          final long t2 = System.nanoTime();
          final int total =
              exchange.exchange(task.firstStep() + step, replica.gradientBuffer(), slice.length);
          final long t3 = System.nanoTime();
          replica.applyUpdate(total);
          final long t4 = System.nanoTime();
          dataNs += t1 - t0;
          computeNs += t2 - t1;
          syncNs += t3 - t2;
          applyNs += t4 - t3;
          samples += slice.length;
          lossSum += replica.lastLoss() * slice.length;
          if (rank == 0 && ((step + 1) % PROGRESS_EVERY_STEPS == 0 || step + 1 == task.steps())) {
            final double seconds = (System.nanoTime() - epochStartNs) / 1e9;
            LOG.info(
                String.format(
                    "epoch %d step %d/%d loss %.4f %.0f images/s",
                    task.epoch() + 1,
                    step + 1,
                    task.steps(),
                    replica.lastLoss(),
                    (step + 1) * (double) job.batchSize() / seconds));
          }
        }
      } catch (RuntimeException e) {
        exchange.abort(task.firstStep() + step, e.getMessage());
        throw e;
      }
    }
    replica.endEpoch();
    return new EpochReport(
        rank,
        task.steps(),
        samples,
        lossSum,
        dataNs,
        computeNs,
        syncNs,
        applyNs,
        replica.parametersCrc(),
        rank == 0 ? replica.snapshot() : null);
  }

  /**
   * Sets ND4J's OpenMP threads and pins OpenBLAS to one thread. ND4J resets OpenBLAS's count at
   * start-up, so the environment variable has no effect; it must be set in code.
   *
   * @param threads OpenMP threads for this process's ND4J operations
   */
  public static void configureThreads(int threads) {
    Nd4j.getEnvironment().setMaxThreads(threads);
    Nd4j.getEnvironment().setMaxMasterThreads(threads);
    Nd4j.factory().blas().setMaxThreads(1);
  }
}
