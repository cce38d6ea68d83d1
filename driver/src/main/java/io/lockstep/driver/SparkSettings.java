package io.lockstep.driver;

import io.lockstep.conf.ConfigurationException;
import io.lockstep.conf.JobConfig;
import io.lockstep.conf.Keys;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.spark.SparkConf;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * What the driver asks of Spark and of every JVM that trains: the master, the barrier stages'
 * settings, the executors' JVM options and environment, and the checks that refuse a master that
 * cannot run the job's workers.
 */
public final class SparkSettings {
  private static final Logger LOG = LoggerFactory.getLogger(SparkSettings.class);

  /**
   * JVM options every JVM that runs workers or the server needs: Aeron and Agrona reach into {@code
   * jdk.internal.misc}.
   */
  public static final List<String> REQUIRED_JVM_OPTIONS =
      List.of("--add-exports=java.base/jdk.internal.misc=ALL-UNNAMED");

  /**
   * The environment every JVM that trains needs from glibc's allocator: a fixed threshold above
   * which {@code malloc} maps memory of its own and {@code free} returns it. By default glibc
   * raises the threshold to the size of each mapped block freed (up to 32 MiB), so the large
   * buffers that come and go all run long (Deeplearning4j's oneDNN reorders, batches, workspaces)
   * move into per-thread arenas, which keep their freed memory: resident memory then grows by tens
   * of MB per epoch without end though what is in use stays flat. The threshold is glibc's own
   * initial value, 128 KiB, held. {@code bin/lockstep} sets it for the driver; {@link #sparkConf}
   * for executors.
   */
  public static final Map<String, String> ALLOCATOR_ENVIRONMENT =
      Map.of("MALLOC_MMAP_THRESHOLD_", "131072");

  /**
   * The Java heap's young generation every JVM that trains is started with: at most 64 MB. What a
   * Lockstep JVM keeps on the heap is small (about 100 MB: the dataset's bytes, Spark's and
   * Deeplearning4j's objects) and it allocates little once training (a few hundred KB/s); models,
   * batches and gradients live in native memory. G1 sizes the young generation to a share of the
   * heap it has committed, and commits more after a few collections come close together, as the
   * large arrays of a stage's start and end make them. A young generation of hundreds of MB then
   * fills for the first time over tens of minutes at that allocation rate, and resident memory
   * rises with it epoch after epoch. Held at 64 MB, the heap's resident pages stay those of the
   * first epochs. {@code bin/lockstep} and {@code submit} start the driver with it; {@link
   * #sparkConf} adds it to the executors' options unless they size the young generation already.
   */
  public static final String YOUNG_GENERATION_OPTION = "-XX:MaxNewSize=64m";

  /**
   * The Java heap's regions in every JVM that trains: 4 MB, where G1 would give a heap of up to 2
   * GB (Spark's executors by default) 1 MB regions. G1 allocates every object of half a region or
   * more as a humongous object, straight in the old generation, and each such allocation above the
   * occupancy threshold starts a collection. A stage's result reaches the driver as Spark's 1 MB
   * serialization chunks, three sets of them per result (JFR, {@code
   * jdk.ObjectAllocationOutsideTLAB}: {@code SerializerHelper.serializeToChunkedBuffer}); with 1 MB
   * regions every chunk was humongous, a stage's end started collections two at a time, and G1
   * answered their pause-time ratio by committing hundreds of MB more heap, which the chunks then
   * walked through: an executor's resident memory rose about 15 MB an epoch with a stage every 50
   * steps. With 4 MB regions the chunks are young objects like any other. {@link #sparkConf} adds
   * it to the executors' options unless they set the region size already; the driver runs {@link
   * #DRIVER_COLLECTOR_OPTION}'s collector instead.
   */
  public static final String HEAP_REGION_OPTION = "-XX:G1HeapRegionSize=4m";

  /**
   * The driver's garbage collector: the serial one. The driver holds the Spark driver, the
   * parameter server's shards and, in local mode, every worker; its heap after a collection stays
   * near 140 MB. G1 commits more heap whenever collections come close together (its pause-time
   * ratio, against a threshold scaled down by how far the heap is below its maximum), which a
   * stage's start and end always make, while the young generation, held at {@link
   * #YOUNG_GENERATION_OPTION}, cannot grow with it: the heap's resident pages then rose for the
   * first 5 to 7 epochs of a local run (G1 ended near 877 MB, +3% to +11% from epoch 5; with the
   * whole heap committed from the start, +6.9% as regions were touched for the first time). The
   * serial collector sizes the heap by what survives a collection alone: the same 30 epochs stayed
   * at 728-743 MB (+1.2% from epoch 5) at the same speed, with young pauses of 22 ms (median) where
   * G1 took 13 ms, one every few seconds (docs/runs.md). {@code bin/lockstep} and {@code submit}
   * start the driver with it unless {@code LOCKSTEP_JAVA_OPTS} chooses a collector; executors keep
   * G1 with {@link #HEAP_REGION_OPTION}, under which they measured flat.
   */
  public static final String DRIVER_COLLECTOR_OPTION = "-XX:+UseSerialGC";

  /**
   * Spark cuts a broadcast into blocks of {@code spark.broadcast.blockSize} and allocates each
   * block whole while it serializes (4 MB by default). Every stage broadcasts its task, and every
   * new state a stage starts from is broadcast too, so each stage allocated several 4 MB blocks:
   * humongous objects in 4 MB regions (anything over half a region), allocated outside the young
   * generation, which start collections of their own ("G1 Humongous Allocation" in a local run's GC
   * log). Blocks of 1 MB are young objects like any other. A user's setting is kept.
   */
  static final String BROADCAST_BLOCK_KEY = "spark.broadcast.blockSize";

  static final String BROADCAST_BLOCK_SIZE = "1m";

  /** {@code local}, {@code local[N]}, {@code local[*]}, {@code local[N, F]}: N in group 1. */
  private static final Pattern LOCAL_MASTER =
      Pattern.compile("local(?:\\[\\s*(\\*|\\d+)\\s*(?:,\\s*\\d+\\s*)?\\])?");

  /** How often Spark checks for a barrier stage's slots. */
  private static final int BARRIER_CHECK_SECONDS = 5;

  /**
   * The Spark master: {@code lockstep.spark.master} when set, else the one spark-submit was given
   * ({@code spark.master}), else local mode with a thread per worker.
   */
  static String master(JobConfig job) {
    if (!job.get(Keys.SPARK_MASTER).isEmpty()) {
      return job.get(Keys.SPARK_MASTER);
    }
    return System.getProperty("spark.master", "local[" + job.get(Keys.WORKERS) + "]");
  }

  /**
   * Refuses a local master with fewer task slots than workers, which Spark would otherwise retry
   * for minutes before it fails the barrier stage.
   */
  static void checkLocalSlots(JobConfig job, String master) {
    final Matcher local = LOCAL_MASTER.matcher(master);
    if (!local.matches()) {
      return;
    }
    final String threads = local.group(1);
    final int slots =
        threads == null
            ? 1
            : threads.equals("*")
                ? Runtime.getRuntime().availableProcessors()
                : Integer.parseInt(threads);
    if (slots < job.get(Keys.WORKERS)) {
      throw new ConfigurationException(
          String.format(
              "%s=%d needs %d task slots, but Spark master %s has %d; use local[%d] or fewer"
                  + " workers",
              Keys.WORKERS.name(),
              job.get(Keys.WORKERS),
              job.get(Keys.WORKERS),
              master,
              slots,
              job.get(Keys.WORKERS)));
    }
  }

  /**
   * Spark settings a barrier stage of one task per worker needs, over what spark-submit or the user
   * set: one core per executor and task (a worker is one task; its threads are {@code
   * lockstep.worker.threads}), as many cores or executors as workers, no dynamic allocation
   * (barrier stages refuse it), no task retries inside a stage (the driver retries whole stages),
   * and the JVM options Aeron needs on every executor.
   */
  static SparkConf sparkConf(JobConfig job, String master) {
    final SparkConf conf =
        new SparkConf()
            .setMaster(master)
            .setAppName("lockstep " + job.get(Keys.JOB_NAME))
            .set("spark.ui.showConsoleProgress", "false")
            .set("spark.task.maxFailures", "1")
            .set("spark.dynamicAllocation.enabled", "false");
    // running tasks' accumulators reach the driver's progress bar with every heartbeat
    conf.setIfMissing("spark.executor.heartbeatInterval", "1s");
    // an executor whose host went silent (power, link) is counted out within about 35 s, not
    // Spark's 120 s checked each 60 s, so a failed stage's retry runs on the executors that remain
    // instead of waiting for the lost one's task (lockstep.train.elastic)
    conf.setIfMissing("spark.storage.blockManagerHeartbeatTimeoutMs", "30s");
    conf.setIfMissing("spark.storage.blockManagerTimeoutIntervalMs", "5s");
    conf.setIfMissing("spark.network.timeoutInterval", "5s");
    conf.setIfMissing(BROADCAST_BLOCK_KEY, BROADCAST_BLOCK_SIZE);
    final String workers = Integer.toString(job.get(Keys.WORKERS));
    conf.setIfMissing("spark.executor.cores", "1");
    conf.setIfMissing("spark.cores.max", workers);
    conf.setIfMissing("spark.executor.instances", workers);
    // executors may still be registering: wait for their slots as long as for the workers to
    // connect, not Spark's default 40 checks 15 s apart
    final long checks =
        Math.max(1, job.get(Keys.CONNECT_TIMEOUT).toSeconds() / BARRIER_CHECK_SECONDS);
    conf.setIfMissing(
        "spark.scheduler.barrier.maxConcurrentTasksCheck.interval", BARRIER_CHECK_SECONDS + "s");
    conf.setIfMissing(
        "spark.scheduler.barrier.maxConcurrentTasksCheck.maxFailures", Long.toString(checks));
    final String options = conf.get("spark.executor.extraJavaOptions", "");
    final StringBuilder all = new StringBuilder(options);
    for (String option : REQUIRED_JVM_OPTIONS) {
      if (!options.contains(option)) {
        all.append(all.isEmpty() ? "" : " ").append(option);
      }
    }
    if (!options.contains("NewSize") && !options.contains("-Xmn")) {
      all.append(all.isEmpty() ? "" : " ").append(YOUNG_GENERATION_OPTION);
    }
    if (!options.contains("G1HeapRegionSize")) {
      all.append(all.isEmpty() ? "" : " ").append(HEAP_REGION_OPTION);
    }
    conf.set("spark.executor.extraJavaOptions", all.toString());
    ALLOCATOR_ENVIRONMENT.forEach(
        (name, value) -> conf.setIfMissing("spark.executorEnv." + name, value));
    return conf;
  }

  /**
   * Says once, where this JVM was started without {@link #ALLOCATOR_ENVIRONMENT} (a driver not
   * started by {@code bin/lockstep}), that its resident memory will grow over a long run and how to
   * start it instead.
   */
  static void warnOfAllocator() {
    if (!System.getProperty("os.name", "").startsWith("Linux")) {
      return;
    }
    ALLOCATOR_ENVIRONMENT.forEach(
        (name, value) -> {
          if (System.getenv(name) == null && WARNED_OF_ALLOCATOR.compareAndSet(false, true)) {
            LOG.warn(
                "{} is not set in the driver's environment: glibc will keep the memory of freed"
                    + " buffers and the driver's resident memory grow over a long run (the workers"
                    + " of local mode run in it); start it with {}={} (bin/lockstep does)",
                name,
                name,
                value);
          }
        });
  }

  private static final java.util.concurrent.atomic.AtomicBoolean WARNED_OF_ALLOCATOR =
      new java.util.concurrent.atomic.AtomicBoolean();

  /**
   * Whether {@code master} is Spark's local mode: {@code local}, {@code local[N]}, {@code local[*]}
   * or {@code local[N, F]}.
   */
  static boolean isLocal(String master) {
    return LOCAL_MASTER.matcher(master).matches();
  }

  private SparkSettings() {}
}
