package io.lockstep.driver;

import io.lockstep.conf.ConfigurationException;
import io.lockstep.conf.Elasticity;
import io.lockstep.conf.JobConfig;
import io.lockstep.conf.Keys;
import io.lockstep.conf.Transport;
import io.lockstep.data.DataException;
import io.lockstep.data.SliceSpan;
import io.lockstep.protocol.ParameterServerException;
import io.lockstep.protocol.ServerAddress;
import io.lockstep.protocol.ShardSpan;
import io.lockstep.ps.RunningServer;
import io.lockstep.worker.ComputeDevice;
import io.lockstep.worker.ModelState;
import io.lockstep.worker.ProcessResources;
import io.lockstep.worker.StageReport;
import io.lockstep.worker.StageTask;
import io.lockstep.worker.StepListener;
import io.lockstep.worker.Worker;
import java.io.IOException;
import java.io.Serializable;
import java.net.InetAddress;
import java.net.NetworkInterface;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.IntStream;
import org.apache.spark.BarrierTaskContext;
import org.apache.spark.SparkContext;
import org.apache.spark.api.java.JavaSparkContext;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import scala.Function1;
import scala.jdk.javaapi.CollectionConverters;
import scala.reflect.ClassTag;
import scala.reflect.ClassTag$;

/**
 * Runs a run's stages on Spark, each as one barrier stage of a task per worker, against the run's
 * parameter server, which it owns: it runs a failed stage again from its first step with a new
 * server ({@code lockstep.train.stage-retries}), on fewer workers when the cluster lost task slots
 * for good and on more when they come back ({@code lockstep.train.elastic}).
 */
final class StageRunner implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(StageRunner.class);

  /** How long a failed stage's retry waits for Spark to count a lost executor's slots out. */
  private static final Duration LOST_EXECUTOR_GRACE = Duration.ofSeconds(3);

  private final JobConfig job;
  private final String master;
  private final JavaSparkContext spark;
  private final SharedState shared;
  private final EpochProgress progress;
  private final String serverHost;
  private final int parameters;
  private final byte[] secret;
  private ServerAddress address;
  private RunningServer server;
  private int stageWorkers;
  // whether the cluster ever placed a stage's every task: a run shrinks only when slots it had
  // are lost, and a cluster that never had enough for the job's workers is its configuration's
  // error
  private boolean hadEverySlot;
  private int retries;
  private long rejectedBefore;

  /**
   * A stage that ran.
   *
   * @param task the task as its last attempt ran it
   * @param reports the workers' reports, rank 0 first
   */
  record Ran(StageTask task, List<StageReport> reports) {}

  /**
   * Launches the run's parameter server for the job's workers.
   *
   * @param job the job
   * @param master the Spark master, for messages
   * @param spark the run's Spark context
   * @param shared where the stages' starting states are broadcast
   * @param progress the run's progress display
   * @param parameters the model's parameters
   * @param secret the shard processes' secret; null for shards in this JVM
   * @param firstStep the global step the run goes on from
   */
  StageRunner(
      JobConfig job,
      String master,
      JavaSparkContext spark,
      SharedState shared,
      EpochProgress progress,
      int parameters,
      byte[] secret,
      int firstStep) {
    this.job = job;
    this.master = master;
    this.spark = spark;
    this.shared = shared;
    this.progress = progress;
    this.parameters = parameters;
    this.secret = secret;
    this.stageWorkers = job.get(Keys.WORKERS);
    this.serverHost = ServerPlacement.serverHost(job, master, spark.getConf());
    this.address =
        ServerPlacement.serverAddress(job, serverHost, parameters, secret, job.get(Keys.WORKERS));
    this.server = ServerPlacement.launchServer(job, serverHost, address, firstStep);
  }

  /**
   * Runs the steps {@code [step, to)} of an epoch, again after a failure as far as the job allows.
   *
   * @param description the stage, for logs and Spark's UI
   * @param model the state the stage starts from
   * @param epoch the epoch, from 0
   * @param stepsPerEpoch steps of each epoch
   * @param step the stage's first step in its epoch
   * @param to the step after its last
   * @return the task and the workers' reports
   */
  Ran run(String description, ModelState model, int epoch, int stepsPerEpoch, int step, int to) {
    StageTask task = null;
    List<StageReport> reports = null;
    int shrinkTo = 0;
    for (int attempt = 0; reports == null; attempt++) {
      final int workers =
          shrinkTo > 0 ? shrinkTo : stageWorkers(job, stageWorkers, slots(spark), false);
      shrinkTo = 0;
      if (workers != stageWorkers) {
        if (workers == job.get(Keys.WORKERS)) {
          LOG.info(
              "{}: the cluster has task slots for {} workers again; running on all {}"
                  + " workers from step {}",
              description,
              slots(spark),
              workers,
              model.iteration());
        } else {
          LOG.warn(
              "{}: the cluster has task slots for {} workers; running on {} of {} workers"
                  + " from step {}, worker 0 computing slices 1-{} of each batch as"
                  + " micro-batches",
              description,
              slots(spark),
              workers,
              job.get(Keys.WORKERS),
              model.iteration(),
              SliceSpan.of(0, workers, job.get(Keys.WORKERS)).count());
        }
        stageWorkers = workers;
        progress.runOn(workers);
        if (server != null) {
          rejectedBefore += server.rejectedFrames();
          server.close();
          server = null;
        }
      }
      if (server == null) {
        address = ServerPlacement.serverAddress(job, serverHost, parameters, secret, workers);
        server = ServerPlacement.launchServer(job, serverHost, address, model.iteration());
      }
      task =
          new StageTask(
              job, shared.source(model), server.shards(), workers, epoch, stepsPerEpoch, step, to);
      final String attemptDescription = description + (attempt == 0 ? "" : ", retry " + attempt);
      // the job's and its stage's names in Spark's UI, instead of "collect at ..."
      spark.setJobDescription(attemptDescription);
      spark.setCallSite(attemptDescription);
      try {
        final List<StageReport> collected =
            runBarrierStage(spark, task, progress.listener(epoch, stepsPerEpoch));
        server.checkHealthy();
        reports = collected;
      } catch (Exception e) { // Spark's SparkException is checked, thrown undeclared
        if (slotsMissing(e)) {
          final int fewer = stageWorkers(job, workers, slots(spark), true);
          if (hadEverySlot && fewer < workers && attempt < job.get(Keys.STAGE_RETRIES)) {
            // executors lost for good: the next attempt runs on those that remain
            LOG.warn(
                "{}: the cluster offered fewer than {} task slots for {} s",
                description,
                workers,
                job.get(Keys.CONNECT_TIMEOUT).toSeconds());
            retries++;
            shrinkTo = fewer;
            continue;
          }
          final String refusal = job.shrinkRefusal();
          throw new ConfigurationException(
              String.format(
                  "%s=%d needs %d task slots (one core each) and the cluster at %s offered"
                      + " fewer for %d s; start more workers or executors, or lower %s%s",
                  Keys.WORKERS.name(),
                  job.get(Keys.WORKERS),
                  workers,
                  master,
                  job.get(Keys.CONNECT_TIMEOUT).toSeconds(),
                  Keys.WORKERS.name(),
                  refusal == null ? "" : " (the run does not shrink: " + refusal + ")"));
        }
        // its tasks were placed: slots missing later were lost, not never there
        hadEverySlot = true;
        final RuntimeException refused = refusedByWorker(e);
        if (refused != null) {
          throw refused;
        }
        // The server names the worker and step that failed; Spark's barrier error does not.
        final RuntimeException failure = named(server, e);
        if (attempt == job.get(Keys.STAGE_RETRIES) || !retryable(e) || !retryable(failure)) {
          throw failure;
        }
        LOG.warn(
            "{}: the stage failed ({}); running it again from step {} (its first, the last"
                + " checkpoint) with a new parameter server, retry {} of {}",
            description,
            failure.getMessage(),
            model.iteration(),
            attempt + 1,
            job.get(Keys.STAGE_RETRIES));
        retries++;
        rejectedBefore += server.rejectedFrames();
        server.close();
        server = null;
        // the executors of a lost host: gone from Spark's count before the stage runs again
        awaitLostExecutors(spark, workers);
      }
    }
    hadEverySlot = true;
    return new Ran(task, reports);
  }

  /** The spans of chunk sums the server traced since the last call. */
  List<ShardSpan> drainSpans() {
    return server.drainSpans();
  }

  /** Stages run again, after a failure or on fewer workers. */
  int retries() {
    return retries;
  }

  /** Frames the run's servers refused: from another job, forged or replayed. */
  long rejectedFrames() {
    return rejectedBefore + (server == null ? 0 : server.rejectedFrames());
  }

  /** Whether the run's frames carry a tag under the job's key. */
  boolean frameTags() {
    return address.key().tags();
  }

  /** Stops the parameter server. */
  @Override
  public void close() {
    if (server != null) {
      server.close();
      server = null;
    }
  }

  /**
   * Whether a failed stage may succeed when run again: not when a worker found the data or the
   * configuration wrong, which a retry would only find again.
   */
  private static boolean retryable(Throwable e) {
    for (Throwable cause = e; cause != null; cause = cause.getCause()) {
      if (cause instanceof ConfigurationException
          || cause instanceof DataException
          || cause instanceof ParameterServerException reported && reported.permanent()) {
        return false;
      }
      if (cause.getCause() == cause) {
        break;
      }
    }
    return true;
  }

  /**
   * What a failed stage reports: the server's account when it has one (it names the worker and
   * step), else Spark's.
   */
  private static RuntimeException named(RunningServer server, Exception e) {
    try {
      server.checkHealthy();
      return e instanceof RuntimeException runtime
          ? runtime
          : new IllegalStateException(e.getMessage(), e);
    } catch (RuntimeException failure) {
      failure.addSuppressed(e);
      return failure;
    }
  }

  /**
   * The configuration or data error a worker threw before it reached the parameter server, which a
   * retry would meet again. Spark's barrier failure keeps no cause, only the task's exception as
   * text in its message ({@code "...\nio.lockstep.conf.ConfigurationException: MESSAGE\n\tat
   * ..."}).
   *
   * @return the error, rebuilt, or null when the failure is none of these
   */
  private static RuntimeException refusedByWorker(Throwable e) {
    for (Throwable cause = e; cause != null; cause = cause.getCause()) {
      final String message = cause.getMessage() == null ? "" : cause.getMessage();
      for (String line : message.split("\n")) {
        if (line.startsWith(ConfigurationException.class.getName() + ": ")) {
          return new ConfigurationException(
              line.substring(ConfigurationException.class.getName().length() + 2), e);
        }
        if (line.startsWith(DataException.class.getName() + ": ")) {
          return new DataException(line.substring(DataException.class.getName().length() + 2), e);
        }
      }
      if (cause.getCause() == cause) {
        break;
      }
    }
    return null;
  }

  /**
   * Whether Spark gave up on a barrier stage because the cluster offered fewer task slots than it
   * has tasks (its {@code BarrierJobSlotsNumberCheckFailed}, not part of Spark's API).
   */
  private static boolean slotsMissing(Throwable e) {
    for (Throwable cause = e; cause != null; cause = cause.getCause()) {
      if (cause.getClass().getSimpleName().equals("BarrierJobSlotsNumberCheckFailed")) {
        return true;
      }
      if (cause.getCause() == cause) {
        break;
      }
    }
    return false;
  }

  /**
   * The workers the next attempt of a stage runs on ({@code lockstep.train.elastic}): fewer than
   * now only once Spark gave up on the last attempt for want of task slots, after waiting {@code
   * lockstep.ps.connect-timeout} for them (executors lost for good: a lost executor's host that is
   * alive gets a new one within seconds, executors still registering at the start are waited for);
   * more, up to the job's, when the cluster offers more again and the job may grow; unchanged when
   * it offers none; always the job's where it may not shrink.
   *
   * @param job the job
   * @param current the workers of the last attempt
   * @param slots the task slots the cluster offers now
   * @param slotsMissing whether Spark gave up on the last attempt for want of slots
   * @return the workers, in [1, job's workers]
   */
  static int stageWorkers(JobConfig job, int current, int slots, boolean slotsMissing) {
    if (job.shrinkRefusal() != null) {
      return job.get(Keys.WORKERS);
    }
    if (slots <= 0) {
      return current;
    }
    if (slotsMissing && slots < current) {
      return slots;
    }
    if (job.get(Keys.ELASTIC) == Elasticity.GROW && slots > current) {
      return Math.min(slots, job.get(Keys.WORKERS));
    }
    return current;
  }

  /** The task slots the cluster offers now: the executors' cores, as Spark counts them. */
  private static int slots(JavaSparkContext spark) {
    final SparkContext context = spark.sc();
    return context.maxNumConcurrentTasks(context.resourceProfileManager().defaultResourceProfile());
  }

  /**
   * After a failed stage, waits up to a few seconds until Spark counts no more task slots than
   * {@code workers} minus those of executors it has lost since: a killed executor's connection
   * closes at once, but its removal reaches the scheduler a moment later, and a stage started
   * before that would wait for the lost slot.
   */
  private static void awaitLostExecutors(JavaSparkContext spark, int workers) {
    final long deadline = System.nanoTime() + LOST_EXECUTOR_GRACE.toNanos();
    final int before = slots(spark);
    while (System.nanoTime() < deadline && slots(spark) >= Math.min(before, workers)) {
      try {
        Thread.sleep(100);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        return;
      }
    }
  }

  private static List<StageReport> runBarrierStage(
      JavaSparkContext spark, StageTask task, StepListener listener) {
    final int workers = task.workers();
    final Function1<scala.collection.Iterator<Integer>, scala.collection.Iterator<StageReport>>
        train = new WorkerFunction(task, listener);
    final ClassTag<StageReport> tag = ClassTag$.MODULE$.apply(StageReport.class);
    final Object collected =
        spark
            .parallelize(IntStream.range(0, workers).boxed().toList(), workers)
            .rdd()
            .barrier()
            .mapPartitions(train, false, tag)
            .collect();
    final List<StageReport> reports = new ArrayList<>(Arrays.asList((StageReport[]) collected));
    reports.sort((a, b) -> Integer.compare(a.rank(), b.rank()));
    return reports;
  }

  /** The body of one barrier task: runs {@link Worker#runStage} as the partition's rank. */
  private static final class WorkerFunction
      extends scala.runtime.AbstractFunction1<
          scala.collection.Iterator<Integer>, scala.collection.Iterator<StageReport>>
      implements Serializable {
    private static final long serialVersionUID = 1L;
    private final StageTask task;
    private final StepListener listener;

    WorkerFunction(StageTask task, StepListener listener) {
      this.task = task;
      this.listener = listener;
    }

    @Override
    public scala.collection.Iterator<StageReport> apply(scala.collection.Iterator<Integer> ranks) {
      final BarrierTaskContext context = BarrierTaskContext.get();
      final int rank = context.partitionId();
      final String address = context.getTaskInfos()[rank].address();
      final String host = hostOf(address);
      final int workersOnHost =
          (int)
              Arrays.stream(context.getTaskInfos())
                  .filter(info -> hostOf(info.address()).equals(host))
                  .count();
      final org.apache.spark.resource.ResourceInformation gpu = context.resourcesJMap().get("gpu");
      ComputeDevice.bind(gpu == null ? List.of() : List.of(gpu.addresses()));
      if (!"driver".equals(org.apache.spark.SparkEnv.get().executorId())) {
        // an executor's log says what each of its tasks trains, and which attempt it is
        LOG.info(
            "rank {}: epoch {} steps {}-{} starting (stage attempt {})",
            rank,
            task.epoch() + 1,
            task.fromStep() + 1,
            task.fromStep() + task.steps(),
            context.stageAttemptNumber());
      }
      if (task.job().get(Keys.TRANSPORT) == Transport.IPC) {
        requireDriversHost(task.server().shard(0).host(), rank, host);
      }
      final String executor = org.apache.spark.SparkEnv.get().executorId();
      final StageReport report =
          Worker.runStage(
                  task,
                  rank,
                  task.job().get(Keys.TRANSPORT) == Transport.UDP ? host : null,
                  workersOnHost,
                  listener)
              .withResources(
                  ProcessResources.measure(
                      "driver".equals(executor) ? "driver" : "executor " + executor, host));
      return CollectionConverters.asScala(List.of(report).iterator());
    }

    /**
     * Refuses IPC on an executor on another host than the driver's: the server's Aeron directory is
     * in the driver host's {@code /dev/shm}, which no other host sees, so the worker would wait for
     * its connect timeout and name the wrong cause.
     *
     * @param driverHost the driver's address (the server's, for IPC)
     * @throws ConfigurationException when {@code driverHost} is none of this host's addresses
     */
    private static void requireDriversHost(String driverHost, int rank, String host) {
      try {
        final InetAddress driver = InetAddress.getByName(driverHost);
        if (driver.isLoopbackAddress() || NetworkInterface.getByInetAddress(driver) != null) {
          return;
        }
      } catch (IOException e) {
        // an address this host cannot even resolve is not this host's either
      }
      throw new ConfigurationException(
          Keys.TRANSPORT.name()
              + "=ipc needs every worker on the driver's host ("
              + driverHost
              + "), but rank "
              + rank
              + " runs on "
              + host
              + "; set "
              + Keys.TRANSPORT.name()
              + "=udp for workers on other hosts");
    }

    private static String hostOf(String address) {
      return address.contains(":") ? address.substring(0, address.lastIndexOf(':')) : address;
    }
  }
}
