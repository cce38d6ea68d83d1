package io.lockstep.worker;

import io.lockstep.conf.ComputeEngine;
import io.lockstep.conf.JobConfig;
import io.lockstep.conf.Keys;
import io.lockstep.conf.Precision;
import io.lockstep.models.ComputeHelpers;
import io.lockstep.models.ModelZoo;
import io.lockstep.models.SampleDropout;
import io.lockstep.worker.input.RandomBatch;
import java.util.Arrays;
import java.util.Locale;
import java.util.Map;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * Times one worker's full training step, forward, backward and optimizer update, exactly as {@link
 * Worker} runs it (a {@link Replica}'s gradients, then its update), on random images and labels of
 * the model's shape ({@link RandomBatch}: boxes for a detector, phrases for a grounding model). No
 * synchronization: {@code bench sync} times that.
 */
public final class StepBenchmark {
  /**
   * What to time.
   *
   * @param model a model name of {@link ModelZoo}
   * @param batchSize images per step
   * @param steps timed steps
   * @param warmup untimed steps first
   * @param threads OpenMP threads; 0 for every core of this host
   * @param engine what computes the passes
   * @param precision the number format of convolutions and dense layers
   */
  public record Settings(
      String model,
      int batchSize,
      int steps,
      int warmup,
      int threads,
      ComputeEngine engine,
      Precision precision) {
    /** Checks the settings. */
    public Settings {
      ModelZoo.spec(model);
      if (batchSize < 1) {
        throw new IllegalArgumentException("--batch-size " + batchSize + ": must be at least 1");
      }
      if (steps < 1) {
        throw new IllegalArgumentException("--steps " + steps + ": must be at least 1");
      }
      if (warmup < 0) {
        throw new IllegalArgumentException("--warmup " + warmup + ": must be 0 or more");
      }
      if (threads < 0) {
        throw new IllegalArgumentException(
            "--threads " + threads + ": must be 0 (all cores) or more");
      }
    }
  }

  /**
   * What one benchmark measured.
   *
   * @param settings what was timed
   * @param threads the OpenMP threads used
   * @param parameters the model's trainable parameters
   * @param engine what computed the passes ({@link Replica#engine()})
   * @param helpers layers with a oneDNN or cuDNN helper, of those that can take one
   * @param stepMillis every timed step's wall time, in order
   * @param updateMillis the part of each step spent in the optimizer update
   */
  public record Result(
      Settings settings,
      int threads,
      long parameters,
      String engine,
      String helpers,
      double[] stepMillis,
      double[] updateMillis) {
    /**
     * @return the median step time in milliseconds
     */
    public double medianMillis() {
      return median(stepMillis);
    }

    /**
     * @return the median time of a step's optimizer update in milliseconds
     */
    public double medianUpdateMillis() {
      return median(updateMillis);
    }

    private static double median(double[] values) {
      final double[] sorted = values.clone();
      Arrays.sort(sorted);
      final int n = sorted.length;
      return n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
    }

    /**
     * @return images per second at the median step time
     */
    public double imagesPerSecond() {
      return settings.batchSize() * 1000.0 / medianMillis();
    }

    /**
     * @return one line of {@code key=value} pairs
     */
    public String line() {
      final double[] sorted = stepMillis.clone();
      Arrays.sort(sorted);
      return String.format(
          Locale.ROOT,
          "model=%s batch_size=%d steps=%d threads=%d parameters=%d engine=%s precision=%s"
              + " helpers=%s"
              + " min_ms=%.2f median_ms=%.2f max_ms=%.2f median_update_ms=%.2f"
              + " images_per_second=%.1f",
          settings.model(),
          settings.batchSize(),
          settings.steps(),
          threads,
          parameters,
          engine.split(" ")[0],
          Keys.lowerName(settings.precision()),
          helpers,
          sorted[0],
          medianMillis(),
          sorted[sorted.length - 1],
          medianUpdateMillis(),
          imagesPerSecond());
    }
  }

  private StepBenchmark() {}

  /**
   * Builds the model and times its steps.
   *
   * @param settings what to time
   * @return the step times
   */
  public static Result run(Settings settings) {
    final int threads = ComputeThreads.configure(settings.threads(), 1);
    final JobConfig job =
        JobConfig.load(
            JobConfig.overrides(
                Map.of(
                    Keys.MODEL_NAME.name(), settings.model(),
                    Keys.BATCH_SIZE.name(), Integer.toString(settings.batchSize()))));
    final ModelZoo.Spec spec = ModelZoo.spec(settings.model());
    try (Replica replica =
        Replica.create(
            ModelZoo.configuration(job, settings.steps()),
            settings.engine(),
            settings.precision())) {
      return run(
          settings,
          threads,
          RandomBatch.of(spec, settings.batchSize(), job.get(Keys.SEED)),
          replica);
    }
  }

  private static Result run(Settings settings, int threads, RandomBatch batch, Replica replica) {
    final INDArray features = batch.features();
    final INDArray labels = batch.labels();
    // the same images every step, as one epoch's first batch
    final long[] samples = new long[(int) features.size(0)];
    for (int i = 0; i < samples.length; i++) {
      samples[i] = SampleDropout.sampleKey(0, 0, i);
    }
    for (int i = 0; i < settings.warmup(); i++) {
      replica.computeGradients(features, labels, samples, 1.0);
      replica.applyUpdate(settings.batchSize(), 0);
    }
    final double[] millis = new double[settings.steps()];
    final double[] updateMillis = new double[settings.steps()];
    for (int i = 0; i < settings.steps(); i++) {
      final long start = System.nanoTime();
      replica.computeGradients(features, labels, samples, 1.0);
      final long computed = System.nanoTime();
      replica.applyUpdate(settings.batchSize(), 0);
      final long end = System.nanoTime();
      millis[i] = (end - start) / 1e6;
      updateMillis[i] = (end - computed) / 1e6;
    }
    return new Result(
        settings,
        threads,
        replica.trainableParameterCount(),
        replica.engine(),
        ComputeHelpers.summary(replica.network()),
        millis,
        updateMillis);
  }
}
