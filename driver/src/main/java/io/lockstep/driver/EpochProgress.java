package io.lockstep.driver;

import io.lockstep.conf.ProgressDisplay;
import io.lockstep.worker.StepListener;
import java.io.PrintStream;
import java.io.Serializable;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.spark.SparkEnv;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.scheduler.AccumulableInfo;
import org.apache.spark.scheduler.SparkListener;
import org.apache.spark.scheduler.SparkListenerExecutorMetricsUpdate;
import org.apache.spark.util.DoubleAccumulator;
import org.apache.spark.util.LongAccumulator;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import scala.Tuple4;
import scala.jdk.javaapi.CollectionConverters;

/**
 * The driver's live view of an epoch: steps, images/s, loss and time left, as a bar redrawn in
 * place on a terminal or as plain lines in a log. Workers count their steps, samples and loss into
 * Spark accumulators ({@link #listener}); executors send the running tasks' values with every
 * heartbeat ({@code spark.executor.heartbeatInterval}, which {@link TrainingDriver} sets to a
 * second unless the user set it), and this listener shows them.
 */
final class EpochProgress extends SparkListener {
  private static final Logger LOG = LoggerFactory.getLogger(EpochProgress.class);

  /** A worker logs its step this often in an executor's log. */
  private static final int LOG_EVERY_STEPS = 50;

  private static final long LINE_EVERY_NS = 10_000_000_000L;
  private static final int BAR_WIDTH = 24;

  private final boolean bar;
  private final boolean lines;
  private final PrintStream out;
  private volatile int workers;
  private final LongAccumulator steps;
  private final LongAccumulator samples;
  private final DoubleAccumulator lossSum;

  /** Per running task: its steps, samples and loss sum so far in the stage. */
  private final Map<Long, double[]> tasks = new ConcurrentHashMap<>();

  /**
   * The newest Spark stage heard of: a heartbeat of an earlier stage's task, late on the listener
   * bus, is not counted into the current one.
   */
  private int sparkStage = -1;

  private volatile String title = "";
  private volatile int stageFirstStep;
  private volatile int stageSteps;
  private volatile int stepsPerEpoch;
  private volatile long stageStartNs;
  private long lastLineNs;

  private EpochProgress(
      JavaSparkContext spark, ProgressDisplay display, int workers, PrintStream out, boolean tty) {
    this.bar = display == ProgressDisplay.BAR || display == ProgressDisplay.AUTO && tty;
    this.lines = display == ProgressDisplay.LINES || display == ProgressDisplay.AUTO && !tty;
    this.out = out;
    this.workers = workers;
    this.steps = spark.sc().longAccumulator("lockstep steps");
    this.samples = spark.sc().longAccumulator("lockstep samples");
    this.lossSum = spark.sc().doubleAccumulator("lockstep loss sum");
  }

  /**
   * Starts showing the progress of the job's stages on this JVM's error stream.
   *
   * @param spark the job's context
   * @param display how
   * @param workers the workers of every stage, until {@link #runOn} says otherwise
   * @return the listener, registered with Spark
   */
  static EpochProgress start(JavaSparkContext spark, ProgressDisplay display, int workers) {
    return start(spark, display, workers, System.err, errorIsTerminal());
  }

  /**
   * Starts showing the progress of the job's stages.
   *
   * @param spark the job's context
   * @param display how
   * @param workers the workers of every stage
   * @param out where the bar goes
   * @param tty whether {@code out} is a terminal, for {@link ProgressDisplay#AUTO}
   * @return the listener, registered with Spark
   */
  static EpochProgress start(
      JavaSparkContext spark, ProgressDisplay display, int workers, PrintStream out, boolean tty) {
    final EpochProgress progress = new EpochProgress(spark, display, workers, out, tty);
    spark.sc().addSparkListener(progress);
    return progress;
  }

  /**
   * What each worker tells of its steps: counted into the accumulators, and logged every {@value
   * #LOG_EVERY_STEPS} steps with the worker's rank in an executor's own log (not in the driver's
   * JVM, where the bar shows them).
   *
   * @param epoch the stage's epoch, from 0
   * @param stepsPerEpoch the steps of an epoch
   * @return a listener for the stage's tasks
   */
  StepListener listener(int epoch, int stepsPerEpoch) {
    return new Counting(steps, samples, lossSum, epoch, stepsPerEpoch);
  }

  /**
   * The stages from now on run on {@code workers} workers: fewer than the job's after some were
   * lost, or the job's again.
   *
   * @param workers the stages' workers
   */
  void runOn(int workers) {
    this.workers = workers;
  }

  /**
   * A stage is starting.
   *
   * @param title what it trains, e.g. "epoch 2/5"
   * @param fromStep its first step in the epoch
   * @param toStep one past its last step
   * @param epochSteps the steps of an epoch
   */
  synchronized void beginStage(String title, int fromStep, int toStep, int epochSteps) {
    tasks.clear();
    this.title = title;
    this.stageFirstStep = fromStep;
    this.stageSteps = toStep - fromStep;
    this.stepsPerEpoch = epochSteps;
    this.stageStartNs = System.nanoTime();
    this.lastLineNs = stageStartNs;
  }

  /**
   * An epoch has ended: draws the bar a last time with the epoch's exact figures, and ends its
   * line.
   *
   * @param samples the epoch's samples
   * @param lossSum their summed loss
   * @param seconds the epoch's stages
   */
  synchronized void endEpoch(long samples, double lossSum, double seconds) {
    if (bar) {
      draw(stepsPerEpoch, samples / seconds, lossSum / samples, 0);
      out.println();
      out.flush();
    }
  }

  @Override
  public synchronized void onExecutorMetricsUpdate(SparkListenerExecutorMetricsUpdate update) {
    if (!bar && !lines) {
      return;
    }
    boolean heard = false;
    for (Tuple4<Object, Object, Object, scala.collection.immutable.Seq<AccumulableInfo>> task :
        CollectionConverters.asJava(update.accumUpdates())) {
      final int stage = (Integer) task._2();
      if (stage < sparkStage) {
        continue;
      }
      if (stage > sparkStage) {
        sparkStage = stage;
        tasks.clear();
      }
      final double[] counts = tasks.computeIfAbsent((Long) task._1(), id -> new double[3]);
      for (AccumulableInfo info : CollectionConverters.asJava(task._4())) {
        final Object value = info.update().isDefined() ? info.update().get() : null;
        if (!(value instanceof Number number)) {
          continue;
        }
        final long id = info.id();
        if (id == steps.id()) {
          counts[0] = number.doubleValue();
          heard = true;
        } else if (id == samples.id()) {
          counts[1] = number.doubleValue();
        } else if (id == lossSum.id()) {
          counts[2] = number.doubleValue();
        }
      }
    }
    if (heard) {
      show();
    }
  }

  private synchronized void show() {
    double stepSum = 0;
    double sampleSum = 0;
    double loss = 0;
    for (double[] counts : tasks.values()) {
      stepSum += counts[0];
      sampleSum += counts[1];
      loss += counts[2];
    }
    final int done = (int) Math.min(stageSteps, Math.floor(stepSum / workers));
    final long now = System.nanoTime();
    final double seconds = (now - stageStartNs) / 1e9;
    final double imagesPerSecond = sampleSum / seconds;
    final double eta = done == 0 ? Double.NaN : seconds * (stageSteps - done) / done;
    final double meanLoss = sampleSum == 0 ? Double.NaN : loss / sampleSum;
    if (bar) {
      draw(stageFirstStep + done, imagesPerSecond, meanLoss, eta);
    } else if (now - lastLineNs >= LINE_EVERY_NS) {
      lastLineNs = now;
      LOG.info("{}: {}", title, figures(stageFirstStep + done, imagesPerSecond, meanLoss, eta));
    }
  }

  private void draw(int step, double imagesPerSecond, double loss, double eta) {
    final int filled = (int) Math.round(BAR_WIDTH * (double) step / stepsPerEpoch);
    out.print(
        "\r\033[K"
            + title
            + " ["
            + "#".repeat(filled)
            + ".".repeat(BAR_WIDTH - filled)
            + "] "
            + figures(step, imagesPerSecond, loss, eta));
    out.flush();
  }

  private String figures(int step, double imagesPerSecond, double loss, double eta) {
    return String.format(
        "%d/%d steps  %.0f images/s  loss %.4f  ETA %s",
        step, stepsPerEpoch, imagesPerSecond, loss, duration(eta));
  }

  private static String duration(double seconds) {
    if (!Double.isFinite(seconds)) {
      return "-";
    }
    final long s = Math.round(seconds);
    return s >= 3600
        ? String.format("%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60)
        : String.format("%d:%02d", s / 60, s % 60);
  }

  /** Whether standard error is a terminal: a bar there, lines into a file or pipe. */
  private static boolean errorIsTerminal() {
    try {
      final String target = Files.readSymbolicLink(Path.of("/proc/self/fd/2")).toString();
      return target.startsWith("/dev/pts/") || target.startsWith("/dev/tty");
    } catch (Exception e) { // not Linux: the console tells of standard input and output only
      return System.console() != null;
    }
  }

  /** A worker's listener: counts into the accumulators and logs in executors. */
  private static final class Counting implements StepListener, Serializable {
    private static final long serialVersionUID = 1L;
    private final LongAccumulator steps;
    private final LongAccumulator samples;
    private final DoubleAccumulator lossSum;
    private final int epoch;
    private final int stepsPerEpoch;

    Counting(
        LongAccumulator steps,
        LongAccumulator samples,
        DoubleAccumulator lossSum,
        int epoch,
        int stepsPerEpoch) {
      this.steps = steps;
      this.samples = samples;
      this.lossSum = lossSum;
      this.epoch = epoch;
      this.stepsPerEpoch = stepsPerEpoch;
    }

    @Override
    public void stepDone(int rank, long globalStep, double loss, int count) {
      steps.add(1);
      samples.add(count);
      lossSum.add(loss);
      final long step = globalStep % stepsPerEpoch + 1;
      if (step % LOG_EVERY_STEPS == 0 && !"driver".equals(SparkEnv.get().executorId())) {
        LOG.info(
            String.format(
                "rank %d: epoch %d step %d/%d (global step %d): loss %.4f",
                rank, epoch + 1, step, stepsPerEpoch, globalStep + 1, loss / count));
      }
    }
  }
}
