package io.lockstep.worker;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.lockstep.conf.JobConfig;
import io.lockstep.conf.Transport;
import io.lockstep.models.ModelZoo;
import io.lockstep.ps.FrameKey;
import io.lockstep.ps.ParameterServer;
import io.lockstep.ps.ServerAddress;
import io.lockstep.ps.ServerShards;
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
 * Many stages in one JVM, as an executor runs them: two ranks on threads and a real server over
 * Aeron IPC, on real Fashion-MNIST. A stage reuses its rank's replica from the last one and trains
 * exactly as a replica made afresh would; after warm-up, more stages leave the process's resident
 * memory, threads and open files where fewer left them.
 */
class WorkerStagesTest {
  private static final int WORKERS = 2;
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

  private static JobConfig job() {
    return JobConfig.load()
        .with(
            Map.of(
                "lockstep.train.workers", Integer.toString(WORKERS),
                "lockstep.train.batch-size", "64",
                "lockstep.optimizer.name", "adam",
                "lockstep.data.dir", "/usr/share/datasets/fashion-mnist"));
  }

  /** Runs {@code stages} stages of {@code steps} steps; returns each stage's parameter CRC. */
  private static List<Long> train(
      JobConfig job, int stages, int steps, boolean fresh, List<ProcessResources> resources)
      throws Exception {
    final int stepsPerEpoch = stages * steps;
    ModelState state = Replica.create(ModelZoo.configuration(job, stepsPerEpoch)).snapshot();
    final ServerAddress address =
        new ServerAddress(
            Transport.IPC,
            "/dev/shm/lockstep-test-" + UUID.randomUUID(),
            "127.0.0.1",
            40125,
            (int) job.termLengthBytes(),
            (int) job.chunkBytes(),
            0xFEED,
            WORKERS,
            state.parameters().length,
            FrameKey.random());
    final ServerShards shards = ServerShards.of(address);
    final List<Long> crcs = new ArrayList<>();
    try (ParameterServer server =
        ParameterServer.launch(
            new ParameterServer.Context().shards(shards).stepTimeout(Duration.ofSeconds(60)))) {
      for (int stage = 0; stage < stages; stage++) {
        if (fresh) {
          Worker.releaseReplicas();
        }
        final StageTask task =
            new StageTask(job, state, shards, 0, stepsPerEpoch, stage * steps, (stage + 1) * steps);
        final List<Future<StageReport>> futures = new ArrayList<>();
        for (int rank = 0; rank < WORKERS; rank++) {
          final int r = rank;
          futures.add(THREADS.submit(() -> Worker.runStage(task, r, "127.0.0.1", WORKERS)));
        }
        final StageReport lead = futures.get(0).get();
        assertEquals(lead.parametersCrc(), futures.get(1).get().parametersCrc());
        crcs.add(lead.parametersCrc());
        state = lead.state();
        resources.add(ProcessResources.measure("test", "localhost"));
      }
      assertEquals(0, server.rejectedFrames());
      server.checkHealthy();
    }
    return crcs;
  }

  @Test
  void shouldTrainWithAReusedReplicaExactlyAsWithAFreshOne() throws Exception {
    final JobConfig job = job();
    final List<ProcessResources> ignored = new ArrayList<>();
    final List<Long> reused = train(job, 3, 8, false, ignored);
    final Replica kept = Worker.idleReplica(0);
    assertNotNull(kept, "rank 0 keeps its replica between stages");
    Worker.releaseReplicas();
    final List<Long> fresh = train(job, 3, 8, true, ignored);
    assertEquals(fresh, reused, "CRC after each stage: reused replicas vs new ones");
    // a later stage takes the kept replica again
    train(job, 1, 8, false, ignored);
    final Replica first = Worker.idleReplica(0);
    train(job, 1, 8, false, ignored);
    assertSame(first, Worker.idleReplica(0), "the next stage reused rank 0's replica");
  }

  @Test
  void shouldLeaveTheProcessFlatOverManyStages() throws Exception {
    final List<ProcessResources> resources = new ArrayList<>();
    final int stages = 40;
    train(job(), stages, 4, false, resources);
    final ProcessResources warm = resources.get(9);
    final ProcessResources last = resources.get(stages - 1);
    final double growth = (double) last.residentBytes() / warm.residentBytes() - 1;
    final StringBuilder figures = new StringBuilder();
    for (int i = 0; i < resources.size(); i++) {
      final ProcessResources r = resources.get(i);
      figures.append(
          String.format(
              "%nstage %d: resident %d MB, threads %d, open files %d",
              i + 1, r.residentBytes() >> 20, r.threads(), r.openFiles()));
    }
    assertTrue(
        growth < 0.05, "resident memory grew " + 100 * growth + "% from stage 10 to 40" + figures);
    assertTrue(last.threads() <= warm.threads() + 2, "threads: " + figures);
    assertTrue(last.openFiles() <= warm.openFiles() + 2, "open files: " + figures);
  }
}
