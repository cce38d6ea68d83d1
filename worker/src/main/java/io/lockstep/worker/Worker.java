package io.lockstep.worker;

import io.lockstep.conf.ComputeEngine;
import io.lockstep.conf.ConfigurationException;
import io.lockstep.conf.JobConfig;
import io.lockstep.conf.Keys;
import io.lockstep.conf.Precision;
import io.lockstep.conf.RunningStats;
import io.lockstep.conf.SyncMode;
import io.lockstep.data.DataException;
import io.lockstep.data.EpochPlan;
import io.lockstep.data.SliceSpan;
import io.lockstep.models.ModelZoo;
import io.lockstep.models.SampleDropout;
import io.lockstep.protocol.TraceClock;
import io.lockstep.ps.client.GradientExchange;
import io.lockstep.worker.input.Datasets;
import io.lockstep.worker.input.Prefetcher;
import io.lockstep.worker.input.Samples;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * Trains one rank's share of an epoch: for each global batch it computes the gradient on its slice,
 * exchanges it through the parameter server, and applies the same step as every other rank. Has no
 * Spark types: the driver calls it from a barrier task, tests call it from plain threads.
 */
public final class Worker {
  /**
   * Each rank's replica between its stages in this JVM: the next stage starts from it as it is when
   * it holds the stage's state, or loads that state into it ({@link Replica#load}), rather than
   * allocating a network, an engine and workspaces again and leaving the allocator the last stage's
   * memory to scatter. A stage takes its rank's replica out and puts it back when it ends well; a
   * failed stage closes it.
   */
  private static final Map<Integer, Replica> IDLE_REPLICAS = new HashMap<>();

  private Worker() {}

  /**
   * Runs one stage on this rank, telling nobody of its steps as they finish.
   *
   * @param task the stage's steps and starting replica
   * @param rank this worker's rank
   * @param workerHost this host's address, as the server can reach it (UDP only)
   * @param workersOnHost the workers of the stage that run on this host, this one included
   * @return timings, per-step losses and the resulting replica's checksum (and snapshot on rank 0)
   */
  public static StageReport runStage(
      StageTask task, int rank, String workerHost, int workersOnHost) {
    return runStage(task, rank, workerHost, workersOnHost, StepListener.NONE);
  }

  /**
   * Runs one stage on this rank.
   *
   * @param task the stage's steps and starting replica
   * @param rank this worker's rank
   * @param workerHost this host's address, as the server can reach it (UDP only)
   * @param workersOnHost the workers of the stage that run on this host, this one included
   * @param listener told of each step as it finishes, on the training thread
   * @return timings, per-step losses and the resulting replica's checksum (and snapshot on rank 0)
   */
  public static StageReport runStage(
      StageTask task, int rank, String workerHost, int workersOnHost, StepListener listener) {
    final JobConfig job = task.job();
    ComputeThreads.configure(job.get(Keys.WORKER_THREADS), workersOnHost);
    final Samples train = Datasets.training(job);
    final EpochPlan plan =
        EpochPlan.of(
            job.get(Keys.SEED),
            task.epoch(),
            train.count(),
            job.get(Keys.BATCH_SIZE),
            job.get(Keys.WORKERS));
    final SliceSpan span = SliceSpan.of(rank, task.workers(), job.get(Keys.WORKERS));
    final Replica replica =
        takeReplica(
            rank, task.state(), job.get(Keys.WORKER_ENGINE), job.get(Keys.COMPUTE_PRECISION));
    boolean completed = false;
    try {
      final int steps = task.steps();
      final double[] lossSums = new double[steps];
      final int[] stepSamples = new int[steps];
      final double[] learningRates = new double[steps];
      final double[] gradientNorms = new double[steps];
      final StepPhases phases = StepPhases.of(steps);
      long samples = 0;
      try (GradientExchange exchange =
              GradientExchange.connect(
                  new GradientExchange.Context()
                      .shards(task.server())
                      .rank(rank)
                      .workerHost(workerHost)
                      .stepTimeout(job.get(Keys.STEP_TIMEOUT))
                      .connectTimeout(job.get(Keys.CONNECT_TIMEOUT))
                      .compression(
                          job.get(Keys.PS_COMPRESSION),
                          job.get(Keys.PS_TOP_K_RATIO),
                          job.get(Keys.PS_THRESHOLD)));
          Prefetcher prefetcher =
              new Prefetcher(
                  train,
                  plan,
                  rank,
                  span,
                  task.epoch(),
                  ModelZoo.spec(job).classes(),
                  task.fromStep(),
                  task.fromStep() + task.steps())) {
        final ExchangedStatistics statistics = new ExchangedStatistics(exchange);
        if (replica.hasSynchronizedStatistics()) {
          replica.synchronizeStatistics(statistics);
        }
        final boolean overlap = job.overlapsBackward();
        if (overlap) {
          replica.reportBackward(exchange::ready);
        }
        final SyncMode mode = job.get(Keys.PS_MODE);
        final INDArray stageStart =
            mode == SyncMode.ASYNC || mode == SyncMode.STALE_SYNC ? replica.parametersCopy() : null;
        int samplesSinceAverage = 0;
        int i = 0;
        try {
          for (; i < steps; i++) {
            final int step = task.fromStep() + i;
            final long globalStep = task.firstGlobalStep() + i;
            final boolean last = i + 1 == steps;
            final long t0 = System.nanoTime();
            final Prefetcher.Batch batch = prefetcher.take(step);
            final int[] slice = batch.slice();
            final boolean empty = slice.length == 0;
            final INDArray features = batch.features();
            final INDArray labels = batch.labels();
            final long t1 = System.nanoTime();
            statistics.beginStep(globalStep, plan.batchSamples(step));
            if (overlap) {
              exchange.begin(globalStep, replica.gradientBuffer(), slice.length, false);
            }
            final MicroBatches parts =
                MicroBatches.of(job, span, plan.batchSamples(step), slice.length);
            replica.computeGradients(
                features,
                labels,
                sampleKeys(job.get(Keys.SEED), task.epoch(), slice),
                parts.sizes(),
                parts.shares(),
                parts.sliceParts());
            final long t2 = System.nanoTime();
            learningRates[i] = replica.learningRate();
            long exchangeNs = 0;
            switch (mode) {
              case SYNC -> {
                final int total =
                    overlap
                        ? exchange.finish()
                        : exchange.exchange(globalStep, replica.gradientBuffer(), slice.length);
                exchangeNs = System.nanoTime() - t2;
                replica.applyUpdate(total, job.get(Keys.CLIP_NORM));
              }
              case LOCAL_SGD -> {
                if (empty) {
                  replica.skipStep();
                } else {
                  replica.applyUpdate(slice.length, job.get(Keys.CLIP_NORM));
                }
                samplesSinceAverage += slice.length;
                if ((globalStep + 1) % job.get(Keys.PS_LOCAL_STEPS) == 0 || last) {
                  replica.loadWeightedParameters(samplesSinceAverage);
                  final long e0 = System.nanoTime();
                  final int total =
                      exchange.exchange(globalStep, replica.gradientBuffer(), samplesSinceAverage);
                  exchangeNs = System.nanoTime() - e0;
                  replica.takeAverage(total);
                  samplesSinceAverage = 0;
                }
              }
              case ASYNC, STALE_SYNC -> {
                if (empty) {
                  replica.skipStep();
                } else {
                  replica.computeStep(slice.length, job.get(Keys.CLIP_NORM));
                  replica.scaleBuffer(-(double) slice.length / plan.batchSamples(step));
                }
                final long e0 = System.nanoTime();
                exchange.exchange(globalStep, replica.gradientBuffer(), slice.length, last);
                exchangeNs = System.nanoTime() - e0;
                replica.setParameters(stageStart);
              }
            }
            final long t4 = System.nanoTime();
            phases.startMicros()[i] = TraceClock.toMicros(t0);
            phases.dataNs()[i] = t1 - t0;
            phases.computeNs()[i] = t2 - t1;
            if (exchangeNs > 0) {
              phases.sendNs()[i] = exchange.lastSendNs();
              phases.waitNs()[i] = exchange.lastWaitNs();
              phases.receiveNs()[i] =
                  Math.max(0, exchangeNs - phases.sendNs()[i] - phases.waitNs()[i]);
            }
            phases.applyNs()[i] = Math.max(0, t4 - t2 - phases.syncNs(i));
            samples += slice.length;
            lossSums[i] = replica.lastLoss() * slice.length;
            stepSamples[i] = slice.length;
            gradientNorms[i] = replica.lastGradientNorm();
            listener.stepDone(rank, globalStep, lossSums[i], slice.length);
          }
        } catch (RuntimeException e) {
          // the data or the configuration: a retry would meet it again
          final boolean permanent =
              e instanceof ConfigurationException || e instanceof DataException;
          exchange.abort(task.firstGlobalStep() + i, e.getMessage(), permanent);
          throw e;
        }
      }
      if (task.endsEpoch()) {
        replica.endEpoch();
      }
      final StageReport report =
          new StageReport(
              rank,
              samples,
              lossSums,
              stepSamples,
              learningRates,
              gradientNorms,
              phases,
              replica.parametersCrc(),
              rank == 0 ? replica.resultSnapshot() : null,
              null);
      completed = true;
      return report;
    } finally {
      if (completed) {
        putBackReplica(rank, replica);
      } else {
        replica.close();
      }
    }
  }

  /** The keys of a step's samples, which their dropout masks follow ({@link SampleDropout}). */
  private static long[] sampleKeys(long seed, int epoch, int[] slice) {
    final long[] keys = new long[slice.length];
    for (int i = 0; i < slice.length; i++) {
      keys[i] = SampleDropout.sampleKey(seed, epoch, slice[i]);
    }
    return keys;
  }

  /**
   * The replica a stage of {@code rank} starts from: an idle one of this JVM as it is when it holds
   * the stage's state already (the state is then never fetched), the rank's own first, since ranks
   * may move between executors; else the rank's idle one loaded with the fetched state when it is
   * of the same network, engine and precision; else a new one.
   */
  private static Replica takeReplica(
      int rank, StateSource source, ComputeEngine engine, Precision precision) {
    final long fingerprint = source.fingerprint();
    final Replica idle;
    Replica holding = null;
    synchronized (IDLE_REPLICAS) {
      idle = IDLE_REPLICAS.remove(rank);
      if (idle != null && idle.holds(fingerprint, engine, precision)) {
        holding = idle;
      } else {
        for (Iterator<Replica> others = IDLE_REPLICAS.values().iterator(); others.hasNext(); ) {
          final Replica other = others.next();
          if (other.holds(fingerprint, engine, precision)) {
            others.remove();
            holding = other;
            break;
          }
        }
      }
    }
    if (holding != null) {
      if (idle != null && idle != holding) {
        idle.close();
      }
      holding.beginStage();
      return holding;
    }
    final ModelState state;
    try {
      state = source.fetch();
    } catch (RuntimeException e) {
      if (idle != null) {
        idle.close();
      }
      throw e;
    }
    if (idle != null) {
      if (idle.fits(state, engine, precision)) {
        try {
          idle.load(state);
          return idle;
        } catch (RuntimeException e) {
          idle.close();
          throw e;
        }
      }
      idle.close();
    }
    return Replica.restore(state, engine, precision);
  }

  private static void putBackReplica(int rank, Replica replica) {
    final Replica previous;
    synchronized (IDLE_REPLICAS) {
      previous = IDLE_REPLICAS.put(rank, replica);
    }
    if (previous != null) {
      previous.close();
    }
  }

  /** The replica {@code rank} keeps between stages in this JVM, or null; for tests. */
  static Replica idleReplica(int rank) {
    synchronized (IDLE_REPLICAS) {
      return IDLE_REPLICAS.get(rank);
    }
  }

  /**
   * Frees the replicas this JVM keeps between stages. The driver calls it when a job ends, for the
   * workers of Spark local mode that run in its JVM; an executor's end frees its own.
   */
  public static void releaseReplicas() {
    final List<Replica> idle;
    synchronized (IDLE_REPLICAS) {
      idle = new ArrayList<>(IDLE_REPLICAS.values());
      IDLE_REPLICAS.clear();
    }
    idle.forEach(Replica::close);
  }

  /**
   * The passes one worker computes a step in: each of its slices cut into micro-batches as the
   * slice's own worker would cut it ({@link #microBatches}), in slice order.
   *
   * @param sizes each micro-batch's samples, none for an empty span
   * @param shares each micro-batch's weight in the step's running-statistics update
   * @param sliceParts each slice's micro-batches, for the slices with samples
   */
  record MicroBatches(int[] sizes, double[] shares, int[] sliceParts) {
    /**
     * @param job the job, for its slices, micro-batch, mode and statistics rule
     * @param span the worker's slices
     * @param batchSamples the samples of the step's global batch
     * @param spanSamples the samples of the worker's slices together
     * @return the step's passes
     */
    static MicroBatches of(JobConfig job, SliceSpan span, int batchSamples, int spanSamples) {
      final List<Integer> sizes = new ArrayList<>();
      final List<Double> shares = new ArrayList<>();
      final List<Integer> sliceParts = new ArrayList<>();
      for (int slice = span.first(); slice < span.end(); slice++) {
        final int sliceSamples = EpochPlan.partSize(batchSamples, job.get(Keys.WORKERS), slice);
        final int parts = Math.min(microBatches(job, slice), sliceSamples);
        if (parts > 0) {
          sliceParts.add(parts);
        }
        for (int part = 0; part < parts; part++) {
          final int size = EpochPlan.partSize(sliceSamples, parts, part);
          sizes.add(size);
          shares.add(
              job.get(Keys.PS_MODE) == SyncMode.SYNC
                  ? statisticsShare(job, slice, part, size, batchSamples)
                  : (double) size / Math.max(1, spanSamples));
        }
      }
      return new MicroBatches(
          sizes.stream().mapToInt(Integer::intValue).toArray(),
          shares.stream().mapToDouble(Double::doubleValue).toArray(),
          sliceParts.stream().mapToInt(Integer::intValue).toArray());
    }
  }

  /**
   * How many micro-batches this rank computes each step in ({@code lockstep.train.micro-batch}):
   * its slice of a full global batch in parts of at most the micro-batch, as few as that allows. A
   * smaller last batch is cut into as many parts, so one worker with micro-batches of {@code ceil(B
   * / N)} computes every step as N workers do, whenever that takes N parts.
   *
   * @param job the job, for its batch, workers and micro-batch
   * @param rank the worker
   * @return at least 1
   */
  static int microBatches(JobConfig job, int rank) {
    if (job.get(Keys.MICRO_BATCH) == 0) {
      return 1;
    }
    final int slice = EpochPlan.partSize(job.get(Keys.BATCH_SIZE), job.get(Keys.WORKERS), rank);
    return Math.max(1, (slice + job.get(Keys.MICRO_BATCH) - 1) / job.get(Keys.MICRO_BATCH));
  }

  /**
   * This rank's weight in the step's update of running statistics: see {@link RunningStats}. Rank 0
   * always has samples, because the first ranks get the remainder of a batch.
   *
   * @param job the job, for its rule
   * @param rank the worker
   * @param sliceSamples the samples of this worker's slice of the step
   * @param batchSamples the samples of the step's global batch
   * @return the weight, in [0, 1]
   */
  static double statisticsShare(JobConfig job, int rank, int sliceSamples, int batchSamples) {
    return statisticsShare(job, rank, 0, sliceSamples, batchSamples);
  }

  /**
   * One micro-batch's weight in the step's update of running statistics: each micro-batch counts as
   * a worker of its own would, so under the rank-0 rule only rank 0's first micro-batch updates
   * them, and one worker computing a batch in k micro-batches updates them as k workers do.
   *
   * @param job the job, for its rule
   * @param rank the worker
   * @param part the micro-batch within the worker's slice, from 0
   * @param partSamples its samples
   * @param batchSamples the samples of the step's global batch
   * @return the weight, in [0, 1]
   */
  static double statisticsShare(
      JobConfig job, int rank, int part, int partSamples, int batchSamples) {
    return switch (job.get(Keys.BATCHNORM_RUNNING_STATS)) {
      case RANK0 -> rank == 0 && part == 0 ? 1 : 0;
      case AVERAGE -> (double) partSamples / batchSamples;
    };
  }
}
