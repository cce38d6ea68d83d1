package io.lockstep.worker;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.lockstep.conf.JobConfig;
import io.lockstep.conf.Keys;
import io.lockstep.conf.Transport;
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
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Many stages in one JVM, as an executor runs them: two ranks on threads and a real server over
 * Aeron IPC, on real Fashion-MNIST. A stage reuses its rank's replica from the last one, without
 * fetching the state it already holds, and trains exactly as a replica made afresh would; after
 * warm-up, more stages leave the process's resident memory, threads and open files where fewer left
 * them.
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

  /** A state source that counts the workers that fetched its state. */
  private record Counted(ModelState state, long fingerprint, AtomicInteger fetches)
      implements StateSource {
    Counted(ModelState state, AtomicInteger fetches) {
      this(state, state.fingerprint(), fetches);
    }

    @Override
    public ModelState fetch() {
      fetches.incrementAndGet();
      return state;
    }
  }

  private static ModelState initialState(JobConfig job, int stepsPerEpoch) {
    try (Replica initial = Replica.create(ModelZoo.configuration(job, stepsPerEpoch))) {
      return initial.snapshot();
    }
  }

  /** Runs {@code stages} stages of {@code steps} steps; returns each stage's parameter CRC. */
  private static List<Long> train(
      JobConfig job, int stages, int steps, boolean fresh, List<ProcessResources> resources)
      throws Exception {
    return train(
        job,
        initialState(job, stages * steps),
        stages,
        steps,
        fresh,
        resources,
        new AtomicInteger());
  }

  /**
   * Runs {@code stages} stages of {@code steps} steps from {@code state}, each started from the
   * last one's rank-0 snapshot; counts in {@code fetches} the workers that fetched their state.
   */
  private static List<Long> train(
      JobConfig job,
      ModelState state,
      int stages,
      int steps,
      boolean fresh,
      List<ProcessResources> resources,
      AtomicInteger fetches)
      throws Exception {
    final int stepsPerEpoch = stages * steps;
    final ServerAddress address =
        new ServerAddress(
            Transport.IPC,
            "/dev/shm/lockstep-test-" + UUID.randomUUID(),
            "127.0.0.1",
            40125,
            job.get(Keys.PS_TERM_LENGTH).intValue(),
            (int) JobConfig.largestChunkBytes(job.get(Keys.PS_TERM_LENGTH)),
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
            new StageTask(
                job,
                new Counted(state, fetches),
                shards,
                WORKERS,
                0,
                stepsPerEpoch,
                stage * steps,
                (stage + 1) * steps);
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
    final ModelState start = initialState(job, 24);
    final AtomicInteger reusedFetches = new AtomicInteger();
    final List<Long> reused = train(job, start, 3, 8, false, ignored, reusedFetches);
    final Replica kept = Worker.idleReplica(0);
    assertNotNull(kept, "rank 0 keeps its replica between stages");
    assertEquals(WORKERS, reusedFetches.get(), "only the first stage's workers fetch the state");
    Worker.releaseReplicas();
    final AtomicInteger freshFetches = new AtomicInteger();
    final List<Long> fresh = train(job, start, 3, 8, true, ignored, freshFetches);
    assertEquals(fresh, reused, "CRC after each stage: reused replicas vs new ones");
    assertEquals(3 * WORKERS, freshFetches.get(), "workers without a replica fetch the state");
    // a later stage takes the kept replica again
    train(job, 1, 8, false, ignored);
    final Replica first = Worker.idleReplica(0);
    train(job, 1, 8, false, ignored);
    assertSame(first, Worker.idleReplica(0), "the next stage reused rank 0's replica");
  }

  /**
   * A stage run again from an earlier state, as the driver retries a failed stage, finds the kept
   * replicas a stage ahead of that state: they fetch it and train exactly as the first time.
   */
  @Test
  void shouldFetchTheStateWhenTheKeptReplicaHoldsAnother() throws Exception {
    final JobConfig job = job();
    final List<ProcessResources> ignored = new ArrayList<>();
    final ModelState start = initialState(job, 8);
    final AtomicInteger fetches = new AtomicInteger();
    final List<Long> first = train(job, start, 1, 8, false, ignored, fetches);
    final List<Long> again = train(job, start, 1, 8, false, ignored, fetches);
    assertEquals(first, again, "the same stage from the same state");
    assertEquals(2 * WORKERS, fetches.get(), "the kept replicas held the stage's end, not start");
  }

  /**
   * Aeron keeps a closed publication's terms for its linger (5 s) and an image until its liveness
   * timeout (10 s): stages that come faster than that hold several stages' terms at once, by
   * Aeron's design, bounded. The process is measured once they have gone.
   */
  private static final Duration AERON_LINGER = Duration.ofSeconds(12);

  private static final int WARM_STAGES = 50;
  private static final int MORE_STAGES = 50;

  @Test
  void shouldLeaveTheProcessFlatOverManyStages() throws Exception {
    final JobConfig job = job();
    final List<ProcessResources> resources = new ArrayList<>();
    // warm-up: the JIT, the collector's sizing and the allocator's arenas settle over some
    // hundreds of steps
    train(job, WARM_STAGES, 4, false, resources);
    final ProcessResources warm = settled();
    train(job, MORE_STAGES, 4, false, resources);
    final ProcessResources last = settled();
    final double growth = (double) last.residentBytes() / warm.residentBytes() - 1;
    final StringBuilder figures = new StringBuilder();
    for (int i = 0; i < resources.size(); i++) {
      final ProcessResources r = resources.get(i);
      figures.append(
          String.format(
              "%nstage %d: resident %d MB, threads %d, open files %d",
              i + 1, r.residentBytes() >> 20, r.threads(), r.openFiles()));
    }
    figures.append(
        String.format("%nafter %d stages and the linger: %s", WARM_STAGES, describe(warm)));
    figures.append(
        String.format("%nafter %d more stages and the linger: %s", MORE_STAGES, describe(last)));
    System.out.println("WorkerStagesTest:" + figures);
    assertTrue(
        growth < 0.05,
        String.format(
            "resident memory grew %.1f%% over %d more stages:%s",
            100 * growth, MORE_STAGES, figures));
    assertTrue(
        last.heapAfterGcBytes() < warm.heapAfterGcBytes() * 1.2 + (16 << 20),
        "the heap after GC grew:" + figures);
    assertTrue(last.threads() <= warm.threads() + 2, "threads:" + figures);
    assertTrue(last.openFiles() <= warm.openFiles(), "open files:" + figures);
  }

  /**
   * The process once Aeron's lingering terms are gone and a full collection has sized the heap to
   * what it holds (G1 commits heap for the allocation rate it saw, which a test's quick stages
   * raise) and the arrays that were garbage have been freed: what is left is what the stages keep.
   */
  private static ProcessResources settled() throws InterruptedException {
    Thread.sleep(AERON_LINGER.toMillis());
    System.gc();
    // what the collection found unreachable, ND4J's deallocator threads free in the next moments
    Thread.sleep(3000);
    return ProcessResources.measure("test", "localhost");
  }

  private static String describe(ProcessResources r) {
    return String.format(
        "resident %d MB, heap after GC %d MB of %d MB committed, threads %d, open files %d",
        r.residentBytes() >> 20,
        r.heapAfterGcBytes() >> 20,
        r.heapCommittedBytes() >> 20,
        r.threads(),
        r.openFiles());
  }
}
