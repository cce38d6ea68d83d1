package io.lockstep.driver;

import com.google.gson.FieldNamingPolicy;
import com.google.gson.GsonBuilder;
import io.lockstep.conf.JobConfig;
import io.lockstep.conf.Transport;
import io.lockstep.data.LabeledImages;
import io.lockstep.data.Mnist;
import io.lockstep.models.ModelZoo;
import io.lockstep.ps.ParameterServer;
import io.lockstep.ps.ServerAddress;
import io.lockstep.worker.EpochReport;
import io.lockstep.worker.EpochTask;
import io.lockstep.worker.Evaluator;
import io.lockstep.worker.ModelState;
import io.lockstep.worker.Replica;
import io.lockstep.worker.Worker;
import java.io.IOException;
import java.io.Serializable;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.IntStream;
import org.apache.spark.BarrierTaskContext;
import org.apache.spark.SparkConf;
import org.apache.spark.api.java.JavaSparkContext;
import org.deeplearning4j.util.ModelSerializer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import scala.Function1;
import scala.jdk.javaapi.CollectionConverters;
import scala.reflect.ClassTag;
import scala.reflect.ClassTag$;

/**
 * The Spark application: plans epochs, starts the parameter server, runs the workers as one barrier
 * stage per epoch, checks that the replicas agree, evaluates, and writes the run directory ({@code
 * model.zip} with its optimizer state, {@code summary.json}).
 */
public final class TrainingDriver {
  private static final Logger LOG = LoggerFactory.getLogger(TrainingDriver.class);

  private TrainingDriver() {}

  /**
   * Trains the job to the end.
   *
   * @param job the validated job
   * @param runDir where the model and summary go; created if missing
   * @return the summary, also written to {@code runDir/summary.json}
   */
  public static TrainingSummary train(JobConfig job, Path runDir) {
    final long startNs = System.nanoTime();
    Worker.configureThreads(job.workerThreads());
    final LabeledImages test = Mnist.load(job.dataDir(), Mnist.Split.TEST);
    final int trainSamples = Mnist.load(job.dataDir(), Mnist.Split.TRAIN).count();
    final int stepsPerEpoch = job.stepsPerEpoch(trainSamples);
    final Replica initial = Replica.create(ModelZoo.configuration(job));
    ModelState state = initial.snapshot();
    final int parameters = initial.parameterCount();
    final long jobId = new SecureRandom().nextLong();
    final ServerAddress address =
        new ServerAddress(
            job.transport(),
            aeronDirectory(jobId),
            job.psHost(),
            job.psPort(),
            (int) job.termLengthBytes(),
            (int) job.chunkBytes(),
            jobId,
            job.workers(),
            parameters);
    final String master =
        job.sparkMaster().isEmpty() ? "local[" + job.workers() + "]" : job.sparkMaster();
    LOG.info(
        "training {}: model {} ({} parameters), {} workers on {}, global batch {}, {} epochs of {}"
            + " steps",
        job.jobName(),
        job.modelName(),
        parameters,
        job.workers(),
        master,
        job.batchSize(),
        job.epochs(),
        stepsPerEpoch);
    final List<TrainingSummary.Epoch> history = new ArrayList<>();
    final Evaluator evaluator =
        new Evaluator(test, job.dataMean(), job.dataStd(), job.evalBatchSize());
    double trainSeconds = 0;
    long samples = 0;
    final long[] phaseNs = new long[4];
    double accuracy = Double.NaN;
    final long rejected;
    try (JavaSparkContext spark = new JavaSparkContext(sparkConf(job, master));
        ParameterServer server =
            ParameterServer.launch(
                new ParameterServer.Context().address(address).stepTimeout(job.stepTimeout()))) {
      for (int epoch = 0; epoch < job.epochs(); epoch++) {
        final EpochTask task =
            new EpochTask(job, state, address, epoch, (long) epoch * stepsPerEpoch, stepsPerEpoch);
        spark.setJobDescription(job.jobName() + ": epoch " + (epoch + 1) + "/" + job.epochs());
        final long epochStartNs = System.nanoTime();
        final List<EpochReport> reports;
        try {
          reports = runBarrierStage(spark, task);
        } catch (RuntimeException e) {
          // The server names the worker and step that failed; Spark's barrier error does not.
          server.checkHealthy();
          throw e;
        }
        final double seconds = (System.nanoTime() - epochStartNs) / 1e9;
        server.checkHealthy();
        checkReplicasAgree(reports, epoch);
        final EpochReport lead = reports.get(0);
        state = lead.state();
        long epochSamples = 0;
        double lossSum = 0;
        for (EpochReport report : reports) {
          epochSamples += report.samples();
          lossSum += report.lossSum();
          phaseNs[0] += report.dataNs();
          phaseNs[1] += report.computeNs();
          phaseNs[2] += report.syncNs();
          phaseNs[3] += report.applyNs();
        }
        samples += epochSamples;
        trainSeconds += seconds;
        accuracy = evaluator.accuracy(Replica.restore(state).network());
        history.add(
            new TrainingSummary.Epoch(
                epoch + 1, stepsPerEpoch, lossSum / epochSamples, accuracy, seconds));
        LOG.info(
            String.format(
                "epoch %d/%d: train loss %.4f, test accuracy %.4f, %.1f s, %.0f images/s",
                epoch + 1,
                job.epochs(),
                lossSum / epochSamples,
                accuracy,
                seconds,
                epochSamples / seconds));
      }
      rejected = server.rejectedFrames();
    }
    final double workers = job.workers() * 1e9;
    final TrainingSummary summary =
        new TrainingSummary(
            job.jobName(),
            job.modelName(),
            job.workers(),
            job.batchSize(),
            job.epochs(),
            (long) job.epochs() * stepsPerEpoch,
            parameters,
            job.seed(),
            accuracy,
            samples / trainSeconds,
            (System.nanoTime() - startNs) / 1e9,
            trainSeconds,
            master,
            job.transport().name().toLowerCase(java.util.Locale.ROOT),
            new TrainingSummary.Phases(
                phaseNs[0] / workers,
                phaseNs[1] / workers,
                phaseNs[2] / workers,
                phaseNs[3] / workers),
            rejected,
            List.copyOf(history));
    writeRun(runDir, Replica.restore(state), summary);
    return summary;
  }

  private static SparkConf sparkConf(JobConfig job, String master) {
    return new SparkConf()
        .setMaster(master)
        .setAppName("lockstep " + job.jobName())
        .set("spark.ui.showConsoleProgress", "false")
        .set("spark.task.maxFailures", "1")
        .set("spark.dynamicAllocation.enabled", "false");
  }

  private static String aeronDirectory(long jobId) {
    final Path shm = Path.of("/dev/shm");
    final Path base = Files.isDirectory(shm) ? shm : Path.of(System.getProperty("java.io.tmpdir"));
    return base.resolve("lockstep-" + Long.toHexString(jobId)).toString();
  }

  private static List<EpochReport> runBarrierStage(JavaSparkContext spark, EpochTask task) {
    final int workers = task.job().workers();
    final Function1<scala.collection.Iterator<Integer>, scala.collection.Iterator<EpochReport>>
        train = new WorkerFunction(task);
    final ClassTag<EpochReport> tag = ClassTag$.MODULE$.apply(EpochReport.class);
    final Object collected =
        spark
            .parallelize(IntStream.range(0, workers).boxed().toList(), workers)
            .rdd()
            .barrier()
            .mapPartitions(train, false, tag)
            .collect();
    final List<EpochReport> reports = new ArrayList<>(Arrays.asList((EpochReport[]) collected));
    reports.sort((a, b) -> Integer.compare(a.rank(), b.rank()));
    return reports;
  }

  /** The body of one barrier task: runs {@link Worker#runEpoch} as the partition's rank. */
  private static final class WorkerFunction
      extends scala.runtime.AbstractFunction1<
          scala.collection.Iterator<Integer>, scala.collection.Iterator<EpochReport>>
      implements Serializable {
    private static final long serialVersionUID = 1L;
    private final EpochTask task;

    WorkerFunction(EpochTask task) {
      this.task = task;
    }

    @Override
    public scala.collection.Iterator<EpochReport> apply(scala.collection.Iterator<Integer> ranks) {
      final BarrierTaskContext context = BarrierTaskContext.get();
      final int rank = context.partitionId();
      final String address = context.getTaskInfos()[rank].address();
      final String host =
          address.contains(":") ? address.substring(0, address.lastIndexOf(':')) : address;
      final EpochReport report =
          Worker.runEpoch(task, rank, task.job().transport() == Transport.UDP ? host : null);
      return CollectionConverters.asScala(List.of(report).iterator());
    }
  }

  private static void checkReplicasAgree(List<EpochReport> reports, int epoch) {
    final long expected = reports.get(0).parametersCrc();
    for (EpochReport report : reports) {
      if (report.parametersCrc() != expected) {
        throw new IllegalStateException(
            "epoch "
                + (epoch + 1)
                + ": replica of rank "
                + report.rank()
                + " differs from rank 0 (parameter CRC "
                + Long.toHexString(report.parametersCrc())
                + " vs "
                + Long.toHexString(expected)
                + "); the workers did not apply identical steps");
      }
    }
  }

  /** Writes model.zip and summary.json, each through a temporary file and an atomic rename. */
  private static void writeRun(Path runDir, Replica replica, TrainingSummary summary) {
    final String json =
        new GsonBuilder()
            .setFieldNamingPolicy(FieldNamingPolicy.LOWER_CASE_WITH_UNDERSCORES)
            .serializeSpecialFloatingPointValues()
            .setPrettyPrinting()
            .create()
            .toJson(summary);
    try {
      Files.createDirectories(runDir);
      writeAtomically(
          runDir.resolve("model.zip"),
          tmp -> ModelSerializer.writeModel(replica.network(), tmp.toFile(), true));
      writeAtomically(
          runDir.resolve("summary.json"),
          tmp -> Files.writeString(tmp, json + "\n", StandardCharsets.UTF_8));
    } catch (IOException e) {
      throw new UncheckedIOException(runDir + ": cannot write the run (" + e.getMessage() + ")", e);
    }
  }

  /** Writes through a temporary file beside {@code target}, so a reader never sees half a file. */
  private static void writeAtomically(Path target, FileWriter writer) throws IOException {
    final Path tmp = Files.createTempFile(target.getParent(), "." + target.getFileName(), ".tmp");
    try {
      writer.write(tmp);
      Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    } finally {
      Files.deleteIfExists(tmp);
    }
  }

  @FunctionalInterface
  private interface FileWriter {
    void write(Path file) throws IOException;
  }
}
