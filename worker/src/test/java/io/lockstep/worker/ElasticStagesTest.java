package io.lockstep.worker;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.lockstep.conf.JobConfig;
import io.lockstep.conf.Keys;
import io.lockstep.conf.Transport;
import io.lockstep.data.SliceSpan;
import io.lockstep.models.ModelZoo;
import io.lockstep.protocol.FrameKey;
import io.lockstep.protocol.ServerAddress;
import io.lockstep.protocol.ServerShards;
import io.lockstep.ps.ParameterServer;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * A job of three slices whose stages run on three, two, one and three workers again, as after
 * losing hosts and getting them back: the first worker computes the missing workers' slices as
 * micro-batches, and every stage ends on the bits of the same stage on three workers. Real
 * Fashion-MNIST (one thread per worker, whatever the workers on the host; a 200-image subset:
 * batches of 64, 64, 64 and 8, so the last batch leaves slices of 3, 3 and 2), a real server over
 * Aeron IPC, workers on threads.
 */
class ElasticStagesTest {
  private static final int SLICES = 3;
  private static final int STEPS_PER_EPOCH = 4;
  private static final int STEPS_PER_STAGE = 2;
  private static final ExecutorService THREADS = Executors.newCachedThreadPool();

  @BeforeAll
  static void threads() {
    ComputeThreads.configure(1, 1);
  }

  @AfterAll
  static void stopThreads() {
    THREADS.shutdownNow();
  }

  @AfterEach
  void release() {
    Worker.releaseReplicas();
  }

  private static JobConfig job(int microBatch) {
    return JobConfig.load()
        .with(
            Map.of(
                "lockstep.train.workers", Integer.toString(SLICES),
                "lockstep.train.batch-size", "64",
                "lockstep.data.train-samples", "200",
                "lockstep.train.micro-batch", Integer.toString(microBatch),
                "lockstep.optimizer.name", "adam",
                "lockstep.worker.threads", "1",
                "lockstep.data.dir", "/usr/share/datasets/fashion-mnist"));
  }

  /**
   * Runs one stage after another, stage {@code i} on {@code workers[i]} workers with a server of
   * its own, each from the last one's rank-0 state; returns each stage's parameter CRC.
   */
  private static long[] train(JobConfig job, int... workers) throws Exception {
    ModelState state;
    try (Replica initial =
        Replica.create(ModelZoo.configuration(job, STEPS_PER_EPOCH * workers.length))) {
      state = initial.snapshot();
    }
    final long[] crcs = new long[workers.length];
    for (int stage = 0; stage < workers.length; stage++) {
      final int stageWorkers = workers[stage];
      final ServerAddress address =
          new ServerAddress(
              Transport.IPC,
              "/dev/shm/lockstep-test-" + UUID.randomUUID(),
              "127.0.0.1",
              40127,
              job.get(Keys.PS_TERM_LENGTH).intValue(),
              (int) JobConfig.largestChunkBytes(job.get(Keys.PS_TERM_LENGTH)),
              0xE1A5 + stage,
              stageWorkers,
              state.parameters().length,
              FrameKey.random());
      final ServerShards shards = ServerShards.of(address);
      final int first = stage * STEPS_PER_STAGE;
      try (ParameterServer server =
          ParameterServer.launch(
              new ParameterServer.Context()
                  .shards(shards)
                  .stepTimeout(Duration.ofSeconds(60))
                  .firstStep(first))) {
        final StageTask task =
            new StageTask(
                job,
                StateSource.of(state),
                shards,
                stageWorkers,
                first / STEPS_PER_EPOCH,
                STEPS_PER_EPOCH,
                first % STEPS_PER_EPOCH,
                first % STEPS_PER_EPOCH + STEPS_PER_STAGE);
        final List<Future<StageReport>> futures = new ArrayList<>();
        for (int rank = 0; rank < stageWorkers; rank++) {
          final int r = rank;
          futures.add(THREADS.submit(() -> Worker.runStage(task, r, "127.0.0.1", stageWorkers)));
        }
        final StageReport lead = futures.get(0).get();
        long samples = 0;
        for (Future<StageReport> future : futures) {
          final StageReport report = future.get();
          assertEquals(lead.parametersCrc(), report.parametersCrc(), "replicas must agree");
          samples += report.samples();
        }
        final int expected = first % STEPS_PER_EPOCH == 0 ? 128 : 72;
        assertEquals(expected, samples, "stage " + stage + " trains every sample of its batches");
        assertEquals(0, server.rejectedFrames());
        server.checkHealthy();
        crcs[stage] = lead.parametersCrc();
        state = lead.state();
      }
      Worker.releaseReplicas();
    }
    return crcs;
  }

  @Test
  void shouldTrainEveryStageOnTheBitsOfAllWorkersWhateverWorkersRemain() throws Exception {
    final JobConfig job = job(0);
    final long[] full = train(job, 3, 3, 3, 3);
    final long[] elastic = train(job, 3, 2, 1, 3);
    assertArrayEquals(full, elastic, "parameter CRC after each stage");
  }

  /** Micro-batches of 10: each slice is cut as its own worker cuts it, inside a worker's span. */
  @Test
  void shouldCutEachSliceIntoItsOwnMicroBatches() throws Exception {
    final JobConfig job = job(10);
    final long[] full = train(job, 3, 3, 3);
    final long[] elastic = train(job, 1, 2, 3);
    assertArrayEquals(full, elastic, "parameter CRC after each stage");
    final Worker.MicroBatches parts = Worker.MicroBatches.of(job, SliceSpan.of(0, 2, 3), 64, 43);
    assertArrayEquals(new int[] {8, 7, 7, 7, 7, 7}, parts.sizes());
    assertArrayEquals(new double[] {1, 0, 0, 0, 0, 0}, parts.shares(), "rank 0's first pass");
    assertArrayEquals(new int[] {3, 3}, parts.sliceParts());
    final Worker.MicroBatches last = Worker.MicroBatches.of(job, SliceSpan.of(1, 2, 3), 8, 2);
    assertArrayEquals(new int[] {1, 1}, last.sizes(), "a small batch in as many parts");
  }
}
