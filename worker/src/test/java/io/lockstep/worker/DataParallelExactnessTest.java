package io.lockstep.worker;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.lockstep.conf.JobConfig;
import io.lockstep.conf.Keys;
import io.lockstep.conf.Optimizer;
import io.lockstep.conf.RunningStats;
import io.lockstep.conf.Transport;
import io.lockstep.data.EpochPlan;
import io.lockstep.data.LabeledImages;
import io.lockstep.data.Mnist;
import io.lockstep.models.ModelZoo;
import io.lockstep.ps.FrameKey;
import io.lockstep.ps.GradientExchange;
import io.lockstep.ps.ParameterServer;
import io.lockstep.ps.ServerAddress;
import io.lockstep.ps.ServerShards;
import java.nio.ByteOrder;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.stream.Stream;
import org.agrona.concurrent.UnsafeBuffer;
import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.MethodSource;
import org.nd4j.linalg.dataset.DataSet;

/**
 * Synchronous data parallelism against single-process training: N workers on threads, each with its
 * own replica and a real Aeron exchange through a real parameter server, against one process
 * training on the whole global batch with the same sample order — Deeplearning4j's own {@code
 * fit()} for models without BatchNorm (and for one worker), gradient accumulation over the same
 * slices for BatchNorm models (the documented rule: batch statistics per slice, running statistics
 * from rank 0). Real Fashion-MNIST; 20 steps of a global batch of 22 over 427 samples, so three and
 * four workers get uneven slices and the last batch has 9 samples.
 *
 * <p>Every case also checks that the workers equal one process adding the same slices' gradient
 * sums in rank order, to the last bit of every parameter: all that separates them from {@code
 * fit()} is the rounding of Deeplearning4j's forward and backward passes on a slice instead of the
 * whole batch. That rounding can flip a discrete decision (a max-pooling tie, a ReLU at zero) and
 * momentum then carries the difference: with learning rate 0.05 and batches of 22, LeNet with
 * momentum on two workers ended 3.7% of max |parameter| away from {@code fit()} after 20 steps
 * while matching the accumulated sums exactly. The SGD family therefore runs at 0.01 here.
 *
 * <p>oneDNN is held to AVX2 ({@code DNNL_MAX_CPU_ISA=AVX2}, set by this module's {@code
 * exactness-against-fit} test execution), in the engine and in Deeplearning4j's own helpers alike:
 * that is where the bounds below were measured. With AVX-512 the two pick other kernels that round
 * differently, and the gap grows past them: LeNet with SGD 1.0e-4 of max |parameter| after 20
 * steps, Adam on four workers 62% of the parameters beyond 1e-5 (the comparison with the
 * accumulated sums stays exact to the bit either way).
 */
@Timeout(600)
class DataParallelExactnessTest {
  private static final int BATCH = 22;
  private static final int SAMPLES = 427;
  private static final int STEPS = 20;
  private static final long SEED = 11;
  private static final double BOUND = 1e-5;

  private static final ExecutorService THREADS = Executors.newCachedThreadPool();
  private static LabeledImages train;

  @BeforeAll
  static void loadData() {
    final int isa = org.bytedeco.dnnl.global.dnnl.dnnl_get_effective_cpu_isa();
    assertEquals(
        0,
        isa & ~org.bytedeco.dnnl.global.dnnl.dnnl_cpu_isa_avx2,
        "oneDNN may use more than AVX2 here (ISA mask 0x"
            + Integer.toHexString(isa)
            + "): run this test with DNNL_MAX_CPU_ISA=AVX2, as mvn test does");
    ComputeThreads.configure(1, 1);
    train = Mnist.load("/usr/share/datasets/fashion-mnist", Mnist.Split.TRAIN);
  }

  @AfterAll
  static void stopThreads() {
    THREADS.shutdownNow();
  }

  /** The parameters and per-step losses of a trajectory. */
  record Trajectory(float[] parameters, double[] losses, long crc) {}

  static JobConfig job(String model, Optimizer optimizer, int workers) {
    final double lr =
        switch (optimizer) {
          case SGD, MOMENTUM, NESTEROV -> 0.01;
          case ADAM, RMSPROP -> 0.001;
          case ADAGRAD -> 0.01;
        };
    return JobConfig.load()
        .with(
            Map.of(
                "lockstep.model.name", model,
                "lockstep.optimizer.name", optimizer.name().toLowerCase(java.util.Locale.ROOT),
                "lockstep.optimizer.learning-rate", Double.toString(lr),
                "lockstep.optimizer.weight-decay", "1e-4",
                "lockstep.train.batch-size", Integer.toString(BATCH),
                "lockstep.train.workers", Integer.toString(workers),
                "lockstep.train.seed", Long.toString(SEED)));
  }

  static Stream<Arguments> matrix() {
    final List<Arguments> cases = new ArrayList<>();
    for (String model : List.of("lenet", "resnet-mini")) {
      for (Optimizer optimizer : Optimizer.values()) {
        for (int workers = 1; workers <= 4; workers++) {
          cases.add(Arguments.of(model, optimizer, workers));
        }
      }
    }
    return cases.stream();
  }

  @Test
  void shouldTrainThroughThreeShardsExactlyAsThroughOneServer() throws Exception {
    final JobConfig one = job("lenet", Optimizer.MOMENTUM, 2);
    final JobConfig three = one.with(Map.of("lockstep.ps.shards", "3"));
    final ComputationGraphConfiguration configuration = ModelZoo.configuration(one, STEPS);
    final Trajectory unsharded = distributed(one, configuration, SAMPLES, 5);
    final Trajectory sharded = distributed(three, configuration, SAMPLES, 5);
    assertArrayEquals(unsharded.parameters(), sharded.parameters(), 0f);
    assertArrayEquals(unsharded.losses(), sharded.losses(), 0.0);
  }

  @ParameterizedTest(name = "{0} {1} x{2}")
  @MethodSource("matrix")
  void shouldEqualSingleProcessTraining(String model, Optimizer optimizer, int workers)
      throws Exception {
    final JobConfig base = job(model, optimizer, workers);
    final ComputationGraphConfiguration configuration = ModelZoo.configuration(base, STEPS);
    final boolean batchNorm = Replica.create(configuration.clone()).hasRunningStatistics();
    // fit() is Deeplearning4j's arithmetic, and oneDNN's BatchNorm rounds differently enough for
    // the adaptive optimizers to drift apart within a few steps: a BatchNorm model compared with
    // fit() computes on Deeplearning4j's layers (CompiledNetworkTest checks the engine's gradients
    // against double precision); every other case runs on the oneDNN engine
    final JobConfig job =
        batchNorm && workers == 1
            ? base.with(Map.of(Keys.WORKER_ENGINE.name(), "deeplearning4j"))
            : base;
    final String what = model + " " + optimizer + " x" + workers;
    final Trajectory ours = distributed(job, configuration);
    // the exchange itself adds nothing: the same sums as one process adding the slices in order
    final Trajectory accumulated = accumulated(job, configuration);
    assertEquals(
        0.0, relativeDifference(ours.parameters(), accumulated.parameters()), what + " vs sums");
    assertArrayEquals(accumulated.losses(), ours.losses(), 1e-12, what + " losses vs sums");
    final Trajectory reference = batchNorm && workers > 1 ? accumulated : fit(job, configuration);
    assertMatches(what, optimizer, ours, reference);
  }

  /**
   * Asserts that a trajectory matches its reference: within {@link #BOUND} of max |parameter|
   * everywhere for SGD and momentum; for the adaptive optimizers, whose divisions by small second
   * moments amplify rounding, at most one parameter in 10,000 beyond it. Losses within 1e-4, step
   * by step.
   */
  private static void assertMatches(
      String what, Optimizer optimizer, Trajectory ours, Trajectory reference) {
    assertEquals(reference.parameters().length, ours.parameters().length, what + " parameters");
    final float max = maxAbs(reference.parameters());
    int above = 0;
    double largest = 0;
    for (int i = 0; i < ours.parameters().length; i++) {
      final double difference = Math.abs(ours.parameters()[i] - reference.parameters()[i]);
      largest = Math.max(largest, difference / max);
      if (difference > BOUND * max) {
        above++;
      }
    }
    switch (optimizer) {
      case SGD, MOMENTUM, NESTEROV ->
          assertTrue(largest <= BOUND, what + ": max |difference| / max |parameter| = " + largest);
      case ADAM, ADAGRAD, RMSPROP -> {
        final double fraction = (double) above / reference.parameters().length;
        assertTrue(
            fraction <= 1e-4,
            what + ": " + above + " parameters (" + fraction * 100 + "%) differ by > 1e-5 x max");
      }
    }
    for (int s = 0; s < reference.losses().length; s++) {
      final double relative =
          Math.abs(ours.losses()[s] - reference.losses()[s]) / Math.abs(reference.losses()[s]);
      assertTrue(relative <= 1e-4, what + ": loss of step " + s + " differs by " + relative);
    }
  }

  /**
   * SyncBatchNorm: N workers normalizing with the global batch's statistics train as one process
   * with Deeplearning4j's BatchNorm on the whole batch, and per-slice statistics do not. 47 samples
   * leave a third batch of 3, so with four workers rank 3 has an empty slice and takes part in the
   * statistics rounds with zeros.
   *
   * <p>Three steps (two for Adam), not twenty: with BatchNorm on batches of 22 this model amplifies
   * rounding step after step. Measured: SyncBatchNorm on two workers against one process with
   * Deeplearning4j's BatchNorm differs by 1.5e-6 of max |parameter| after three momentum steps,
   * 2.7e-5 after five and 5e-4 after ten, while per-slice statistics differ by 6e-3 after three;
   * with Adam, which turns a rounding difference in a near-zero gradient into a full step, 1 of
   * 20,314 parameters differs by more than 1e-5 x max after two steps, 29 after three and 3,586
   * after five — and one process with SyncBatchNorm against one with BatchNorm, nothing exchanged,
   * drifts the same way (17,747 after twenty). So the bound is checked before rounding has been
   * amplified.
   */
  @ParameterizedTest(name = "resnet-mini sync {0} x{1} over {2} samples")
  @MethodSource("synchronizedCases")
  void shouldEqualSingleProcessBatchNormWithSynchronizedStatistics(
      Optimizer optimizer, int workers, int samples) throws Exception {
    final int steps = optimizer == Optimizer.ADAM ? 2 : 3;
    final JobConfig plain = job("resnet-mini", optimizer, workers);
    final JobConfig sync = plain.with(Map.of("lockstep.batchnorm.sync", "true"));
    final ComputationGraphConfiguration configuration = ModelZoo.configuration(sync, steps);
    assertTrue(Replica.create(configuration.clone()).hasSynchronizedStatistics());
    final Trajectory ours = distributed(sync, configuration, samples, steps);
    final Trajectory reference = fit(plain, ModelZoo.configuration(plain, steps), samples, steps);
    assertMatches("sync " + optimizer + " x" + workers, optimizer, ours, reference);
    final Trajectory perSlice =
        distributed(plain, ModelZoo.configuration(plain, steps), samples, steps);
    final double perSliceDifference =
        relativeDifference(perSlice.parameters(), reference.parameters());
    assertTrue(
        perSliceDifference > 100 * BOUND,
        "sync "
            + optimizer
            + " x"
            + workers
            + ": per-slice statistics should differ, by "
            + perSliceDifference);
  }

  static Stream<Arguments> synchronizedCases() {
    return Stream.of(
        Arguments.of(Optimizer.MOMENTUM, 2, SAMPLES),
        Arguments.of(Optimizer.ADAM, 3, SAMPLES),
        Arguments.of(Optimizer.MOMENTUM, 4, 2 * BATCH + 3));
  }

  /**
   * Sending each layer's chunks while the backward pass goes on changes when bytes travel, not
   * which: the same bits as sending the whole gradient after it. 47 samples leave a last batch of
   * 3, so with four workers rank 3 has an empty slice and never runs a backward pass.
   */
  @ParameterizedTest(name = "{0} x{1}, {2} shards")
  @CsvSource({"resnet-mini, 3, 2", "lenet, 4, 1"})
  void shouldTrainTheSameBitsWhetherTheGradientGoesDuringOrAfterTheBackwardPass(
      String model, int workers, int shards) throws Exception {
    final JobConfig during =
        job(model, Optimizer.MOMENTUM, workers)
            .with(
                Map.of(
                    "lockstep.ps.shards",
                    Integer.toString(shards),
                    "lockstep.batchnorm.running-stats",
                    "average"));
    final JobConfig after = during.with(Map.of("lockstep.ps.overlap", "false"));
    assertTrue(during.overlapsBackward());
    assertFalse(after.overlapsBackward());
    final ComputationGraphConfiguration configuration = ModelZoo.configuration(during, 3);
    final Trajectory overlapped = distributed(during, configuration, 2 * BATCH + 3, 3);
    final Trajectory sequential = distributed(after, configuration, 2 * BATCH + 3, 3);
    assertEquals(sequential.crc(), overlapped.crc());
    assertArrayEquals(sequential.losses(), overlapped.losses());
  }

  @Test
  void shouldBeBitIdenticalFromRunToRun() throws Exception {
    final JobConfig job = job("lenet", Optimizer.ADAM, 3);
    final ComputationGraphConfiguration configuration = ModelZoo.configuration(job, STEPS);
    final Trajectory first = distributed(job, configuration);
    final Trajectory second = distributed(job, configuration);
    assertEquals(first.crc(), second.crc());
    assertArrayEquals(first.parameters(), second.parameters());
    assertArrayEquals(first.losses(), second.losses());
  }

  @Test
  void shouldApplyTheChosenRunningStatisticsRuleIdenticallyOnEveryReplica() throws Exception {
    final List<Trajectory> outcomes = new ArrayList<>();
    for (RunningStats rule : RunningStats.values()) {
      final JobConfig job =
          job("resnet-mini", Optimizer.MOMENTUM, 3)
              .with(
                  Map.of(
                      "lockstep.batchnorm.running-stats",
                      rule.name().toLowerCase(java.util.Locale.ROOT)));
      final ComputationGraphConfiguration configuration = ModelZoo.configuration(job, STEPS);
      // distributed() asserts that every rank ends with the same bits, statistics included
      final Trajectory ours = distributed(job, configuration);
      final Trajectory reference = accumulated(job, configuration);
      final double difference = relativeDifference(ours.parameters(), reference.parameters());
      assertTrue(difference <= BOUND, rule + ": " + difference);
      outcomes.add(ours);
    }
    assertTrue(
        outcomes.get(0).crc() != outcomes.get(1).crc(),
        "rank-0 and averaged running statistics must give different models");
  }

  static Trajectory distributed(JobConfig job, ComputationGraphConfiguration configuration)
      throws Exception {
    return distributed(job, configuration, SAMPLES, STEPS);
  }

  /** N workers on threads, each exchanging through a real parameter server over Aeron IPC. */
  static Trajectory distributed(
      JobConfig job, ComputationGraphConfiguration configuration, int samples, int steps)
      throws Exception {
    final int workers = job.workers();
    final ModelState start = Replica.create(configuration.clone()).snapshot();
    final ServerAddress address =
        new ServerAddress(
            Transport.IPC,
            "/dev/shm/lockstep-test-" + UUID.randomUUID(),
            "127.0.0.1",
            40123,
            (int) job.termLengthBytes(),
            (int) job.chunkBytes(),
            SEED,
            workers,
            start.parameters().length,
            FrameKey.random());
    final ServerShards shards = ServerShards.split(address, job.psShards());
    final EpochPlan plan = EpochPlan.of(SEED, 0, samples, BATCH, workers);
    final Batches batches = new Batches(train, job.dataMean(), job.dataStd());
    try (ParameterServer server =
        ParameterServer.launch(
            new ParameterServer.Context().shards(shards).stepTimeout(Duration.ofSeconds(60)))) {
      final List<Future<Object[]>> futures = new ArrayList<>();
      for (int r = 0; r < workers; r++) {
        final int rank = r;
        futures.add(
            THREADS.submit(
                () -> {
                  // as a Worker does on the thread that computes: one OpenMP team size everywhere,
                  // so oneDNN reduces in the same order as the single process it is compared to
                  ComputeThreads.configure(1, 1);
                  final Replica replica = Replica.restore(start, job.workerEngine());
                  final double[] lossSums = new double[steps];
                  try (GradientExchange exchange =
                      GradientExchange.connect(
                          new GradientExchange.Context()
                              .shards(shards)
                              .rank(rank)
                              .stepTimeout(Duration.ofSeconds(60))
                              .connectTimeout(Duration.ofSeconds(60)))) {
                    final ExchangedStatistics statistics = new ExchangedStatistics(exchange);
                    replica.synchronizeStatistics(statistics);
                    final boolean overlap = job.overlapsBackward();
                    if (overlap) {
                      replica.reportBackward(exchange::ready);
                    }
                    for (int step = 0; step < steps; step++) {
                      final int[] slice = plan.slice(step, rank);
                      statistics.beginStep(step, plan.batchSamples(step));
                      if (overlap) {
                        exchange.begin(step, replica.gradientBuffer(), slice.length, false);
                      }
                      replica.computeGradients(
                          slice.length == 0 ? null : batches.features(slice),
                          slice.length == 0 ? null : batches.labels(slice),
                          Worker.statisticsShare(job, rank, slice.length, plan.batchSamples(step)));
                      final int total =
                          overlap
                              ? exchange.finish()
                              : exchange.exchange(step, replica.gradientBuffer(), slice.length);
                      replica.applyUpdate(total, job.clipNorm());
                      lossSums[step] = replica.lastLoss() * slice.length;
                    }
                  }
                  return new Object[] {replica, lossSums};
                }));
      }
      final double[] losses = new double[steps];
      Replica lead = null;
      for (Future<Object[]> future : futures) {
        final Object[] result = future.get();
        final Replica replica = (Replica) result[0];
        if (lead == null) {
          lead = replica;
        }
        assertEquals(lead.parametersCrc(), replica.parametersCrc(), "replicas must agree");
        final double[] sums = (double[]) result[1];
        for (int s = 0; s < steps; s++) {
          losses[s] += sums[s] / plan.batchSamples(s);
        }
      }
      return new Trajectory(lead.network().params().toFloatVector(), losses, lead.parametersCrc());
    }
  }

  static Trajectory fit(JobConfig job, ComputationGraphConfiguration configuration) {
    return fit(job, configuration, SAMPLES, STEPS);
  }

  /** Deeplearning4j's own fit() on every whole global batch. */
  static Trajectory fit(
      JobConfig job, ComputationGraphConfiguration configuration, int samples, int steps) {
    final ComputationGraph network = new ComputationGraph(configuration.clone());
    network.init(Replica.create(configuration.clone()).network().params().dup(), false);
    final EpochPlan plan = EpochPlan.of(SEED, 0, samples, BATCH, job.workers());
    final Batches batches = new Batches(train, job.dataMean(), job.dataStd());
    final double[] losses = new double[steps];
    for (int step = 0; step < steps; step++) {
      final int[] batch = plan.batch(step);
      final DataSet data = new DataSet(batches.features(batch), batches.labels(batch));
      network.setInputs(data.getFeatures());
      network.setLabels(data.getLabels());
      network.computeGradientAndScore();
      losses[step] = network.score();
      network.fit(data);
    }
    return new Trajectory(network.params().toFloatVector(), losses, 0);
  }

  static Trajectory accumulated(JobConfig job, ComputationGraphConfiguration configuration) {
    return accumulated(job, configuration, SAMPLES, STEPS);
  }

  /**
   * One process, one replica: the slices' gradient sums accumulated in rank order, then one update
   * — the same rule as the workers, without any parameter server.
   */
  static Trajectory accumulated(
      JobConfig job, ComputationGraphConfiguration configuration, int samples, int steps) {
    final Replica replica = Replica.create(configuration.clone(), job.workerEngine());
    final EpochPlan plan = EpochPlan.of(SEED, 0, samples, BATCH, job.workers());
    final Batches batches = new Batches(train, job.dataMean(), job.dataStd());
    final UnsafeBuffer buffer = replica.gradientBuffer();
    final float[] sum = new float[buffer.capacity() / Float.BYTES];
    final double[] losses = new double[steps];
    for (int step = 0; step < steps; step++) {
      java.util.Arrays.fill(sum, 0f);
      for (int rank = 0; rank < job.workers(); rank++) {
        final int[] slice = plan.slice(step, rank);
        replica.computeGradients(
            slice.length == 0 ? null : batches.features(slice),
            slice.length == 0 ? null : batches.labels(slice),
            Worker.statisticsShare(job, rank, slice.length, plan.batchSamples(step)));
        for (int i = 0; i < sum.length; i++) {
          sum[i] += buffer.getFloat(i * Float.BYTES, ByteOrder.LITTLE_ENDIAN);
        }
        losses[step] += replica.lastLoss() * slice.length / plan.batchSamples(step);
      }
      for (int i = 0; i < sum.length; i++) {
        buffer.putFloat(i * Float.BYTES, sum[i], ByteOrder.LITTLE_ENDIAN);
      }
      replica.applyUpdate(plan.batchSamples(step), job.clipNorm());
    }
    return new Trajectory(replica.network().params().toFloatVector(), losses, 0);
  }

  private static float maxAbs(float[] values) {
    float max = 0;
    for (float v : values) {
      max = Math.max(max, Math.abs(v));
    }
    return max;
  }

  static double relativeDifference(float[] ours, float[] theirs) {
    double largest = 0;
    for (int i = 0; i < ours.length; i++) {
      largest = Math.max(largest, Math.abs(ours[i] - theirs[i]));
    }
    return largest / maxAbs(theirs);
  }
}
