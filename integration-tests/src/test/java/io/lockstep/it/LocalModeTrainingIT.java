package io.lockstep.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.lockstep.conf.JobConfig;
import io.lockstep.data.EpochPlan;
import io.lockstep.data.LabeledImages;
import io.lockstep.data.Mnist;
import io.lockstep.driver.TrainingDriver;
import io.lockstep.driver.TrainingSummary;
import io.lockstep.jobs.Lockstep;
import io.lockstep.models.ModelZoo;
import io.lockstep.worker.Replica;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.deeplearning4j.nn.multilayer.MultiLayerNetwork;
import org.deeplearning4j.util.ModelSerializer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * The whole system in Spark local mode: the driver, a real Aeron media driver and parameter server,
 * barrier tasks running the workers, and the real Fashion-MNIST from Debian's package.
 */
@Timeout(900)
class LocalModeTrainingIT {
  private static final String DATA = "/usr/share/datasets/fashion-mnist";

  private static JobConfig job(Map<String, String> overrides) {
    return JobConfig.load().with(overrides);
  }

  @Test
  void shouldReachEightyPercentTestAccuracyWithTwoWorkersOnATrainingSubset(@TempDir Path run)
      throws Exception {
    final TrainingSummary summary =
        TrainingDriver.train(
            job(Map.of("lockstep.train.workers", "2", "lockstep.train.max-steps", "250")), run);
    assertTrue(summary.testAccuracy() >= 0.80, "test accuracy " + summary.testAccuracy());
    assertEquals(250, summary.steps());
    assertEquals(0, summary.rejectedFrames());
    assertTrue(Files.size(run.resolve("model.zip")) > 1_000_000);
    final String json = Files.readString(run.resolve("summary.json"));
    for (String field :
        new String[] {
          "\"job\"",
          "\"workers\": 2",
          "\"batch_size\": 128",
          "\"epochs\"",
          "\"steps\": 250",
          "\"test_accuracy\"",
          "\"images_per_second\"",
          "\"wall_seconds\""
        }) {
      assertTrue(json.contains(field), field + " missing from " + json);
    }
    // the saved model carries its optimizer state, so training can continue from it
    final MultiLayerNetwork saved =
        ModelSerializer.restoreMultiLayerNetwork(run.resolve("model.zip").toFile(), true);
    assertEquals(saved.numParams(), saved.getUpdater().getStateViewArray().length());
  }

  @Test
  void shouldHoldTheSameParametersWithOneAndTwoWorkersAsSingleProcessFit(@TempDir Path runs)
      throws Exception {
    final int steps = 20;
    final Map<String, String> common =
        Map.of("lockstep.train.max-steps", Integer.toString(steps), "lockstep.train.seed", "7");
    final JobConfig one = job(common).with(Map.of("lockstep.train.workers", "1"));
    final JobConfig two = job(common).with(Map.of("lockstep.train.workers", "2"));
    TrainingDriver.train(one, runs.resolve("one"));
    TrainingDriver.train(two, runs.resolve("two"));
    final INDArray oneWorker = parameters(runs.resolve("one"));
    final INDArray twoWorkers = parameters(runs.resolve("two"));

    // single process, Deeplearning4j's own fit() on each whole global batch, same sample order
    final MultiLayerNetwork reference = Replica.create(ModelZoo.configuration(two)).network();
    final LabeledImages train = Mnist.load(DATA, Mnist.Split.TRAIN);
    final EpochPlan plan = EpochPlan.of(7, 0, train.count(), 128, 2);
    for (int step = 0; step < steps; step++) {
      final int[] batch = plan.batch(step);
      reference.fit(features(train, batch), labels(train, batch));
    }

    final double workers = relative(twoWorkers, oneWorker);
    final double fit = relative(twoWorkers, reference.params());
    assertTrue(workers <= 1e-5, "1 vs 2 workers: " + workers);
    assertTrue(fit <= 1e-5, "2 workers vs fit(): " + fit);
  }

  @Test
  void shouldExitWithAnErrorForBadInput() {
    assertEquals(2, Lockstep.execute("train", "--workers", "0"));
    assertEquals(2, Lockstep.execute("train", "--set", "lockstep.train.wokers=3"));
    assertEquals(
        1, Lockstep.execute("train", "--data-dir", "/nonexistent/fashion", "--max-steps", "1"));
  }

  private static INDArray parameters(Path run) throws Exception {
    return ModelSerializer.restoreMultiLayerNetwork(run.resolve("model.zip").toFile(), false)
        .params();
  }

  private static double relative(INDArray a, INDArray b) {
    return a.sub(b).amaxNumber().doubleValue() / b.amaxNumber().doubleValue();
  }

  private static INDArray features(LabeledImages images, int[] indices) {
    final int size = images.imageBytes();
    final float[] x = new float[indices.length * size];
    for (int i = 0; i < indices.length; i++) {
      for (int p = 0; p < size; p++) {
        x[i * size + p] =
            ((images.pixels()[indices[i] * size + p] & 0xff) / 255f - 0.2860f) / 0.3530f;
      }
    }
    return Nd4j.create(x, new long[] {indices.length, size}, 'c');
  }

  private static INDArray labels(LabeledImages images, int[] indices) {
    final INDArray y = Nd4j.zeros(indices.length, 10);
    for (int i = 0; i < indices.length; i++) {
      y.putScalar(i, images.labels()[indices[i]] & 0xff, 1f);
    }
    return y;
  }
}
