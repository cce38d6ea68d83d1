package io.lockstep.worker;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.lockstep.conf.JobConfig;
import io.lockstep.conf.Keys;
import io.lockstep.conf.Optimizer;
import io.lockstep.conf.RunningStats;
import io.lockstep.conf.Transport;
import io.lockstep.data.EpochPlan;
import io.lockstep.data.LabeledImages;
import io.lockstep.data.Mnist;
import io.lockstep.data.SliceSpan;
import io.lockstep.models.ModelZoo;
import io.lockstep.protocol.FrameKey;
import io.lockstep.protocol.ServerAddress;
import io.lockstep.protocol.ServerShards;
import io.lockstep.ps.ParameterServer;
import io.lockstep.ps.client.GradientExchange;
import io.lockstep.worker.engine.CompiledNetwork;
import io.lockstep.worker.input.Batches;
import io.lockstep.worker.input.PhraseSamples;
import io.lockstep.worker.input.Samples;
import io.lockstep.worker.input.SceneSamples;
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
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Synchronous data parallelism against single-process training, on the machine's own kernels: N
 * workers on threads, each with its own replica and a real Aeron exchange through a real parameter
 * server, on real Fashion-MNIST; 20 steps of a global batch of 22 over 427 samples, so three and
 * four workers get uneven slices and the last batch has 9 samples.
 *
 * <p>The sharp statement: N workers compute exactly what one process computes when it accumulates
 * the same N slices of each global batch in rank order ({@code lockstep.train.micro-batch}), to the
 * last bit of every parameter, for every optimizer, with clipping and with every schedule. Against
 * one process computing each global batch in one pass, only rounding separates them: a slice's
 * forward and backward pass adds in another order than the whole batch's, and float32 training
 * amplifies that. So that comparison is made where it is sharp (one step: the summed gradient
 * within 1e-6 of the unsplit one, per parameter tensor; the parameters after one SGD or momentum
 * step within 1e-6 of max |parameter|) and, over many steps, against the noise floor: the distance
 * between two single-process runs that differ only in their thread count.
 */
@Timeout(600)
class DataParallelExactnessTest {
  private static final int BATCH = 22;
  private static final int SAMPLES = 427;
  private static final int STEPS = 20;
  private static final long SEED = 11;

  private static final ExecutorService THREADS = Executors.newCachedThreadPool();
  private static LabeledImages train;

  @BeforeAll
  static void loadData() {
    train = Mnist.load("/usr/share/datasets/fashion-mnist", Mnist.Split.TRAIN);
  }

  @AfterAll
  static void stopThreads() {
    THREADS.shutdownNow();
  }

  /** The setting that computes convolutions and dense layers in bfloat16. */
  private static final String BF16 = "lockstep.compute.precision=bf16";

  /**
   * The parameters after each step, the per-step losses and the final parameters' checksum of a
   * trajectory.
   */
  record Trajectory(List<float[]> steps, double[] losses, long crc) {
    float[] parameters() {
      return steps.get(steps.size() - 1);
    }
  }

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
                "lockstep.train.seed", Long.toString(SEED),
                "lockstep.worker.threads", "1"));
  }

  /** One worker computing each global batch in the micro-batches that N workers' slices are. */
  static JobConfig accumulating(JobConfig job) {
    final int slice = (BATCH + job.get(Keys.WORKERS) - 1) / job.get(Keys.WORKERS);
    return job.with(
        Map.of(
            "lockstep.train.workers", "1", "lockstep.train.micro-batch", Integer.toString(slice)));
  }

  static Stream<Arguments> matrix() {
    final List<Arguments> cases = new ArrayList<>();
    for (String model : List.of("lenet", "resnet-mini")) {
      for (Optimizer optimizer : Optimizer.values()) {
        for (int workers = 2; workers <= 4; workers++) {
          cases.add(Arguments.of(model, optimizer, workers, ""));
        }
      }
    }
    // clipping and the schedules, warm-up included; the step schedule over two epochs
    for (Optimizer optimizer : List.of(Optimizer.MOMENTUM, Optimizer.ADAM)) {
      cases.add(Arguments.of("lenet", optimizer, 3, "lockstep.optimizer.clip-norm=0.5"));
      cases.add(
          Arguments.of(
              "lenet",
              optimizer,
              3,
              "lockstep.schedule.name=step,lockstep.schedule.gamma=0.5,lockstep.train.epochs=2"));
      cases.add(Arguments.of("lenet", optimizer, 3, "lockstep.schedule.name=cosine"));
      cases.add(Arguments.of("lenet", optimizer, 4, "lockstep.schedule.warmup-steps=8"));
    }
    cases.add(
        Arguments.of(
            "resnet-mini", Optimizer.NESTEROV, 3, "lockstep.batchnorm.running-stats=average"));
    // a detector, and a grounding model (embedding, LSTM, two inputs), on generated scenes
    cases.add(Arguments.of("shapes-yolo", Optimizer.MOMENTUM, 2, ""));
    cases.add(Arguments.of("shapes-grounding", Optimizer.ADAM, 3, ""));
    // bfloat16 (where the CPU computes it): N workers still equal one accumulating process
    cases.add(Arguments.of("lenet", Optimizer.MOMENTUM, 3, BF16));
    cases.add(Arguments.of("resnet-mini", Optimizer.ADAM, 2, BF16));
    cases.add(Arguments.of("lenet", Optimizer.SGD, 4, BF16 + ",lockstep.schedule.name=cosine"));
    return cases.stream();
  }

  @ParameterizedTest(name = "{0} {1} x{2} {3}")
  @MethodSource("matrix")
  void shouldEqualOneProcessAccumulatingTheSameSlices(
      String model, Optimizer optimizer, int workers, String settings) throws Exception {
    if (settings.contains(BF16)) {
      assumeTrue(CompiledNetwork.computesBf16(), "no bfloat16 on this CPU: refused here");
    }
    final JobConfig job = with(job(model, optimizer, workers), settings);
    final ComputationGraphConfiguration configuration = ModelZoo.configuration(job, STEPS);
    final String what = model + " " + optimizer + " x" + workers + " " + settings;
    final Trajectory ours = distributed(job, configuration);
    final Trajectory accumulated = distributed(accumulating(job), configuration);
    assertEquals(accumulated.crc(), ours.crc(), what + ": checksum vs one worker accumulating");
    for (int step = 0; step < STEPS; step++) {
      assertArrayEquals(
          accumulated.steps().get(step), ours.steps().get(step), 0f, what + ", step " + step);
    }
    assertArrayEquals(accumulated.losses(), ours.losses(), 1e-12, what + " losses");
    if ((settings.isEmpty() || settings.equals(BF16))
        && optimizer == Optimizer.MOMENTUM
        && workers == 3) {
      // and the product's accumulation is the plain one: the test adds the slices' sums itself
      assertArrayEquals(accumulated(job, configuration).parameters(), ours.parameters(), 0f);
    }
  }

  /** {@code job} with {@code key=value,key=value} applied. */
  static JobConfig with(JobConfig job, String settings) {
    final Map<String, String> values = new java.util.HashMap<>();
    for (String pair : settings.split(",")) {
      if (!pair.isBlank()) {
        final String[] keyValue = pair.split("=", 2);
        values.put(keyValue[0], keyValue[1]);
      }
    }
    return job.with(values);
  }

  /**
   * One step against one process computing the whole global batch in one pass: the summed gradient
   * within 1e-6 relative of the unsplit batch's, in norm, for every parameter tensor; after one SGD
   * or momentum step the parameters within 1e-6 of max |parameter|. Adaptive optimizers are
   * compared by their gradient only: they can turn a rounding-level sign flip of a near-zero
   * gradient into a whole step.
   */
  @ParameterizedTest(name = "lenet {0} x{1}")
  @CsvSource({"SGD, 2", "SGD, 4", "MOMENTUM, 3", "ADAM, 3"})
  void shouldTakeTheUnsplitBatchsFirstStepWithinRounding(Optimizer optimizer, int workers)
      throws Exception {
    final JobConfig job = job("lenet", optimizer, workers);
    final ComputationGraphConfiguration configuration = ModelZoo.configuration(job, STEPS);
    final EpochPlan plan = EpochPlan.of(SEED, 0, SAMPLES, BATCH, 1);
    final Batches batches = new Batches(train, job.get(Keys.DATA_MEAN), job.get(Keys.DATA_STD));
    final int[] batch = plan.batch(0);
    final Map<String, float[]> whole = gradients(job, configuration, batches, batch, 1);
    final Map<String, float[]> sliced = gradients(job, configuration, batches, batch, workers);
    assertEquals(whole.keySet(), sliced.keySet());
    for (String name : whole.keySet()) {
      final double relative = distance(sliced.get(name), whole.get(name)) / norm(whole.get(name));
      assertTrue(relative <= 1e-6, name + ": |sliced - whole| / |whole| = " + relative);
    }
    if (optimizer == Optimizer.SGD || optimizer == Optimizer.MOMENTUM) {
      final float[] ours = distributed(job, configuration, SAMPLES, 1).parameters();
      final float[] unsplit =
          distributed(job.with(Map.of("lockstep.train.workers", "1")), configuration, SAMPLES, 1)
              .parameters();
      final double difference = relativeDifference(ours, unsplit);
      assertTrue(difference <= 1e-6, "after one step: " + difference + " of max |parameter|");
    }
  }

  /**
   * Many steps against the unsplit batch, beside the noise floor: in a stable regime (momentum at
   * 0.01) three workers stay within twice the distance that changing only the thread count puts
   * between two single-process runs (the largest so far), plus one float32 unit in the last place
   * of the largest parameter, at every step.
   */
  @Test
  void shouldStayWithinTheNoiseFloorOfTheUnsplitBatch() throws Exception {
    final JobConfig job = job("lenet", Optimizer.MOMENTUM, 3);
    final ComputationGraphConfiguration configuration = ModelZoo.configuration(job, STEPS);
    final JobConfig one = job.with(Map.of("lockstep.train.workers", "1"));
    final Trajectory ours = distributed(job, configuration);
    final Trajectory unsplit = distributed(one, configuration);
    final Trajectory otherThreads =
        distributed(one.with(Map.of("lockstep.worker.threads", "2")), configuration);
    double floor = 0;
    for (int step = 0; step < STEPS; step++) {
      final double distance = relativeDifference(ours.steps().get(step), unsplit.steps().get(step));
      // the floor so far: rounding differences grow with the steps, and so may the distance
      floor =
          Math.max(
              floor, relativeDifference(otherThreads.steps().get(step), unsplit.steps().get(step)));
      System.out.printf(
          "step %2d: 3 workers vs unsplit %.3e, noise floor %.3e%n", step + 1, distance, floor);
      // a float32 unit in the last place of the largest parameter: rounding can do no less
      final float largest = maxAbs(unsplit.steps().get(step));
      final double ulp = Math.ulp(largest) / largest;
      assertTrue(
          distance <= 2 * floor + ulp,
          "step "
              + (step + 1)
              + ": "
              + distance
              + " > twice the noise floor "
              + floor
              + " + 1 ulp");
    }
  }

  /** The gradient sums of each parameter tensor over {@code batch}, computed in {@code parts}. */
  private static Map<String, float[]> gradients(
      JobConfig job,
      ComputationGraphConfiguration configuration,
      Batches batches,
      int[] batch,
      int parts) {
    ComputeThreads.configure(job.get(Keys.WORKER_THREADS), 1);
    try (Replica replica =
        Replica.create(
            configuration.clone(), job.get(Keys.WORKER_ENGINE), job.get(Keys.COMPUTE_PRECISION))) {
      final int[] sizes = new int[parts];
      for (int part = 0; part < parts; part++) {
        sizes[part] = EpochPlan.partSize(batch.length, parts, part);
      }
      replica.computeGradients(
          batches.features(batch),
          batches.labels(batch),
          null,
          sizes,
          new double[parts],
          new int[] {parts});
      final Map<String, float[]> gradients = new java.util.TreeMap<>();
      for (org.deeplearning4j.nn.api.Layer layer : replica.network().getLayers()) {
        ModelZoo.gradientViews(layer)
            .forEach(
                (name, view) ->
                    gradients.put(
                        layer.conf().getLayer().getLayerName() + "_" + name,
                        view.dup().data().asFloat()));
      }
      return gradients;
    }
  }

  private static double distance(float[] a, float[] b) {
    double squares = 0;
    for (int i = 0; i < a.length; i++) {
      final double d = (double) a[i] - b[i];
      squares += d * d;
    }
    return Math.sqrt(squares);
  }

  private static double norm(float[] a) {
    return distance(a, new float[a.length]);
  }

  /**
   * SyncBatchNorm: N workers normalizing with the global batch's statistics compute what one
   * replica computes on the whole batch with the same layers, and per-slice statistics do not. 47
   * samples leave a third batch of 3, so with four workers rank 3 has an empty slice and takes part
   * in the statistics rounds with zeros. Three steps: with BatchNorm on batches of 22 this model
   * amplifies rounding step after step, so the bound is checked before rounding has grown.
   */
  @ParameterizedTest(name = "resnet-mini sync {0} x{1} over {2} samples")
  @MethodSource("synchronizedCases")
  void shouldEqualSingleProcessBatchNormWithSynchronizedStatistics(
      Optimizer optimizer, int workers, int samples) throws Exception {
    final int steps = 3;
    final JobConfig plain = job("resnet-mini", optimizer, workers);
    final JobConfig sync = plain.with(Map.of("lockstep.batchnorm.sync", "true"));
    final ComputationGraphConfiguration configuration = ModelZoo.configuration(sync, steps);
    assertTrue(Replica.create(configuration.clone()).hasSynchronizedStatistics());
    final Trajectory ours = distributed(sync, configuration, samples, steps);
    final Trajectory reference =
        distributed(
            sync.with(Map.of("lockstep.train.workers", "1")), configuration, samples, steps);
    final Trajectory perSlice =
        distributed(plain, ModelZoo.configuration(plain, steps), samples, steps);
    final double difference = relativeDifference(ours.parameters(), reference.parameters());
    final double perSliceDifference =
        relativeDifference(perSlice.parameters(), reference.parameters());
    final String what = "sync " + optimizer + " x" + workers;
    System.out.printf(
        "%s: %.3e of max |parameter| from one process, per-slice statistics %.3e%n",
        what, difference, perSliceDifference);
    assertTrue(difference <= 1e-5, what + ": " + difference);
    assertTrue(
        perSliceDifference > 100 * difference && perSliceDifference > 1e-4,
        what + ": per-slice statistics should differ, by " + perSliceDifference);
  }

  static Stream<Arguments> synchronizedCases() {
    return Stream.of(
        Arguments.of(Optimizer.MOMENTUM, 2, SAMPLES),
        Arguments.of(Optimizer.MOMENTUM, 4, 2 * BATCH + 3));
  }

  /**
   * Sending each layer's chunks while the backward pass goes on changes when bytes travel, not
   * which: the same bits as sending the whole gradient after it. 47 samples leave a last batch of
   * 3, so with four workers rank 3 has an empty slice and never runs a backward pass. With
   * micro-batches the gradient goes whole after the last one.
   */
  @ParameterizedTest(name = "{0} x{1}, {2} shards, micro-batch {3}")
  @CsvSource({"resnet-mini, 3, 2, 0", "lenet, 4, 1, 0", "lenet, 2, 1, 4"})
  void shouldTrainTheSameBitsWhetherTheGradientGoesDuringOrAfterTheBackwardPass(
      String model, int workers, int shards, int microBatch) throws Exception {
    final JobConfig during =
        job(model, Optimizer.MOMENTUM, workers)
            .with(
                Map.of(
                    "lockstep.ps.shards",
                    Integer.toString(shards),
                    "lockstep.batchnorm.running-stats",
                    "average",
                    "lockstep.train.micro-batch",
                    Integer.toString(microBatch)));
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
  void shouldTrainThroughThreeShardsExactlyAsThroughOneServer() throws Exception {
    final JobConfig one = job("lenet", Optimizer.MOMENTUM, 2);
    final JobConfig three = one.with(Map.of("lockstep.ps.shards", "3"));
    final ComputationGraphConfiguration configuration = ModelZoo.configuration(one, STEPS);
    final Trajectory unsharded = distributed(one, configuration, SAMPLES, 5);
    final Trajectory sharded = distributed(three, configuration, SAMPLES, 5);
    assertArrayEquals(unsharded.parameters(), sharded.parameters(), 0f);
    assertArrayEquals(unsharded.losses(), sharded.losses(), 0.0);
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
      final Trajectory reference = distributed(accumulating(job), configuration);
      assertEquals(reference.crc(), ours.crc(), rule.toString());
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

  /**
   * N workers on threads, each exchanging through a real parameter server over Aeron IPC; {@code
   * steps} steps spread over the job's epochs.
   */
  static Trajectory distributed(
      JobConfig job, ComputationGraphConfiguration configuration, int samples, int steps)
      throws Exception {
    final int workers = job.get(Keys.WORKERS);
    final ModelState start = Replica.create(configuration.clone()).snapshot();
    final ServerAddress address =
        new ServerAddress(
            Transport.IPC,
            "/dev/shm/lockstep-test-" + UUID.randomUUID(),
            "127.0.0.1",
            40123,
            job.get(Keys.PS_TERM_LENGTH).intValue(),
            (int) JobConfig.largestChunkBytes(job.get(Keys.PS_TERM_LENGTH)),
            SEED,
            workers,
            start.parameters().length,
            FrameKey.random());
    final ServerShards shards = ServerShards.split(address, job.get(Keys.PS_SHARDS));
    final int epochs = job.get(Keys.EPOCHS);
    final int stepsPerEpoch = (steps + epochs - 1) / epochs;
    final Samples batches = samples(job);
    final int classes = ModelZoo.spec(job).classes();
    try (ParameterServer server =
        ParameterServer.launch(
            new ParameterServer.Context().shards(shards).stepTimeout(Duration.ofSeconds(60)))) {
      final List<Future<Object[]>> futures = new ArrayList<>();
      for (int r = 0; r < workers; r++) {
        final int rank = r;
        futures.add(
            THREADS.submit(
                () -> {
                  // as a Worker does on the thread that computes
                  ComputeThreads.configure(job.get(Keys.WORKER_THREADS), workers);
                  final Replica replica =
                      Replica.restore(
                          start, job.get(Keys.WORKER_ENGINE), job.get(Keys.COMPUTE_PRECISION));
                  final double[] lossSums = new double[steps];
                  final List<float[]> parameters = new ArrayList<>();
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
                    final SliceSpan span = SliceSpan.of(rank, workers, workers);
                    for (int global = 0; global < steps; global++) {
                      final int epoch = global / stepsPerEpoch;
                      final int step = global % stepsPerEpoch;
                      final EpochPlan plan = EpochPlan.of(SEED, epoch, samples, BATCH, workers);
                      final int[] slice = plan.slice(step, rank);
                      final int batchSamples = plan.batchSamples(step);
                      statistics.beginStep(global, batchSamples);
                      if (overlap) {
                        exchange.begin(global, replica.gradientBuffer(), slice.length, false);
                      }
                      final Worker.MicroBatches parts =
                          Worker.MicroBatches.of(job, span, batchSamples, slice.length);
                      replica.computeGradients(
                          slice.length == 0 ? null : batches.features(slice, epoch),
                          slice.length == 0 ? null : batches.labels(slice, classes),
                          null,
                          parts.sizes(),
                          parts.shares(),
                          parts.sliceParts());
                      final int total =
                          overlap
                              ? exchange.finish()
                              : exchange.exchange(global, replica.gradientBuffer(), slice.length);
                      replica.applyUpdate(total, job.get(Keys.CLIP_NORM));
                      lossSums[global] = replica.lastLoss() * slice.length;
                      parameters.add(replica.network().params().toFloatVector());
                      if (step == stepsPerEpoch - 1) {
                        replica.endEpoch();
                      }
                    }
                  }
                  return new Object[] {replica, lossSums, parameters};
                }));
      }
      final double[] losses = new double[steps];
      Replica lead = null;
      List<float[]> parameters = null;
      for (Future<Object[]> future : futures) {
        final Object[] result = future.get();
        final Replica replica = (Replica) result[0];
        if (lead == null) {
          lead = replica;
          @SuppressWarnings("unchecked")
          final List<float[]> leads = (List<float[]>) result[2];
          parameters = leads;
        }
        assertEquals(lead.parametersCrc(), replica.parametersCrc(), "replicas must agree");
        final double[] sums = (double[]) result[1];
        for (int s = 0; s < steps; s++) {
          losses[s] +=
              sums[s]
                  / EpochPlan.of(SEED, s / stepsPerEpoch, samples, BATCH, workers)
                      .batchSamples(s % stepsPerEpoch);
        }
      }
      return new Trajectory(parameters, losses, lead.parametersCrc());
    }
  }

  /**
   * One process, one replica: the slices' gradient sums accumulated in rank order by the test
   * itself, then one update, without any parameter server or micro-batches.
   */
  static Trajectory accumulated(JobConfig job, ComputationGraphConfiguration configuration) {
    final Replica replica =
        Replica.create(
            configuration.clone(), job.get(Keys.WORKER_ENGINE), job.get(Keys.COMPUTE_PRECISION));
    ComputeThreads.configure(job.get(Keys.WORKER_THREADS), 1);
    final EpochPlan plan = EpochPlan.of(SEED, 0, SAMPLES, BATCH, job.get(Keys.WORKERS));
    final Samples batches = samples(job);
    final int classes = ModelZoo.spec(job).classes();
    final UnsafeBuffer buffer = replica.gradientBuffer();
    final float[] sum = new float[buffer.capacity() / Float.BYTES];
    final double[] losses = new double[STEPS];
    final List<float[]> parameters = new ArrayList<>();
    for (int step = 0; step < STEPS; step++) {
      for (int rank = 0; rank < job.get(Keys.WORKERS); rank++) {
        final int[] slice = plan.slice(step, rank);
        replica.computeGradients(
            slice.length == 0 ? null : batches.features(slice, 0),
            slice.length == 0 ? null : batches.labels(slice, classes),
            Worker.statisticsShare(job, rank, slice.length, plan.batchSamples(step)));
        for (int i = 0; i < sum.length; i++) {
          final float value = buffer.getFloat(i * Float.BYTES, ByteOrder.LITTLE_ENDIAN);
          sum[i] = rank == 0 ? value : sum[i] + value;
        }
        losses[step] += replica.lastLoss() * slice.length / plan.batchSamples(step);
      }
      for (int i = 0; i < sum.length; i++) {
        buffer.putFloat(i * Float.BYTES, sum[i], ByteOrder.LITTLE_ENDIAN);
      }
      replica.applyUpdate(plan.batchSamples(step), job.get(Keys.CLIP_NORM));
      parameters.add(replica.network().params().toFloatVector());
    }
    return new Trajectory(parameters, losses, replica.parametersCrc());
  }

  /**
   * The job's training samples: Fashion-MNIST for a classifier; generated scenes, with boxes for a
   * detector or phrases for a grounding model, for the others.
   */
  static Samples samples(JobConfig job) {
    final ModelZoo.Spec spec = ModelZoo.spec(job);
    final double[] mean = {0.80, 0.79, 0.80};
    final double[] std = {0.20, 0.20, 0.20};
    return switch (spec.task()) {
      case CLASSIFICATION -> new Batches(train, job.get(Keys.DATA_MEAN), job.get(Keys.DATA_STD));
      case DETECTION -> new SceneSamples(SEED, 0, SAMPLES, spec.height(), spec.grid(), mean, std);
      case GROUNDING -> new PhraseSamples(SEED, 0, SAMPLES, spec.height(), spec.grid(), mean, std);
    };
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
