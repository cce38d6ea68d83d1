package io.lockstep.worker;

import static org.junit.jupiter.api.Assertions.assertTrue;

import io.lockstep.conf.JobConfig;
import io.lockstep.models.ComputeHelpers;
import io.lockstep.models.ModelZoo;
import io.lockstep.worker.input.PhraseSamples;
import io.lockstep.worker.input.Samples;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.deeplearning4j.nn.api.Layer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.MultiDataSet;

/**
 * The grounding model's gradient, parameter tensor by parameter tensor (convolutions, embedding,
 * LSTM, the linear layer, the YOLOv2 head), as a worker computes it: in float32 with
 * Deeplearning4j's oneDNN helpers on whatever kernels this machine's oneDNN dispatches, against the
 * same network and batch in double precision, which runs Deeplearning4j's own code; and that
 * double-precision gradient against central differences of the loss. A kernel, helper or layer that
 * computes a wrong gradient shows as an error of order 1 in its tensor and every one below it;
 * float32's rounding stays near 1e-6.
 */
class GroundingGradientTest {
  private static final double[] MEAN = {0.80, 0.79, 0.80};
  private static final double[] STD = {0.20, 0.20, 0.20};

  private static Replica replica;
  private static ComputationGraph reference;
  private static INDArray[] inputs;
  private static INDArray labels;

  @BeforeAll
  static void networks() {
    final JobConfig job =
        JobConfig.load()
            .with(
                Map.of(
                    "lockstep.model.name", "shapes-grounding",
                    "lockstep.optimizer.name", "adam"));
    replica = Replica.create(ModelZoo.configuration(job, 1));
    final PhraseSamples samples = new PhraseSamples(0, 0, 16, 64, 8, MEAN, STD);
    final int[] batch = Samples.range(0, 16);
    inputs = ModelZoo.inputs(replica.network(), samples.features(batch, 0));
    labels = samples.labels(batch, 3);
    final String helpers = System.getProperty(ComputeHelpers.DISABLE_PROPERTY);
    System.setProperty(ComputeHelpers.DISABLE_PROPERTY, "true");
    try {
      reference = replica.network().convertDataType(DataType.DOUBLE);
    } finally {
      System.setProperty(ComputeHelpers.DISABLE_PROPERTY, helpers);
    }
  }

  @AfterAll
  static void close() {
    replica.close();
  }

  @Test
  void everyTensorsGradientMatchesDoublePrecision() {
    final ComputationGraph network = replica.network();
    assertTrue(
        ComputeHelpers.attached(network).stream().anyMatch(a -> a.helper() != null),
        "the float32 network computes with oneDNN: " + ComputeHelpers.attached(network));
    gradient(network, inputs, labels);
    gradient(reference, doubles(inputs), labels.castTo(DataType.DOUBLE));
    final List<String> errors = new ArrayList<>();
    double worst = 0;
    for (Layer layer : network.getLayers()) {
      if (layer.numParams() == 0) {
        continue;
      }
      final String name = layer.conf().getLayer().getLayerName();
      final Map<String, INDArray> expected = ModelZoo.gradientViews(reference.getLayer(name));
      for (Map.Entry<String, INDArray> actual : ModelZoo.gradientViews(layer).entrySet()) {
        final INDArray want = expected.get(actual.getKey());
        final double error =
            actual.getValue().castTo(DataType.DOUBLE).sub(want).norm2Number().doubleValue()
                / want.norm2Number().doubleValue();
        errors.add(String.format("%s_%s %.1e", name, actual.getKey(), error));
        worst = Math.max(worst, error);
      }
    }
    assertTrue(errors.size() >= 20, "parameter tensors: " + errors);
    assertTrue(worst < 1e-4, "relative error of the float32 gradient: " + errors);
  }

  @Test
  void doublePrecisionGradientMatchesCentralDifferences() {
    final int examples = 4;
    final INDArray[] x = new INDArray[inputs.length];
    for (int i = 0; i < x.length; i++) {
      x[i] = inputs[i].get(org.nd4j.linalg.indexing.NDArrayIndex.interval(0, examples)).dup();
    }
    final INDArray[] features = doubles(x);
    final INDArray y =
        labels
            .get(org.nd4j.linalg.indexing.NDArrayIndex.interval(0, examples))
            .castTo(DataType.DOUBLE);
    final ComputationGraph network = reference.clone();
    gradient(network, features, y);
    final MultiDataSet batch = new MultiDataSet(features, new INDArray[] {y});
    final SplittableRandom random = new SplittableRandom(1);
    final double step = 1e-6;
    final List<String> errors = new ArrayList<>();
    double worst = 0;
    for (Layer layer : network.getLayers()) {
      if (layer.numParams() == 0) {
        continue;
      }
      final String name = layer.conf().getLayer().getLayerName();
      final Map<String, INDArray> gradients = ModelZoo.gradientViews(layer);
      for (Map.Entry<String, INDArray> gradient : gradients.entrySet()) {
        final INDArray parameter = layer.paramTable().get(gradient.getKey());
        double squares = 0;
        double differences = 0;
        for (int k = 0; k < 4; k++) {
          final long i = random.nextLong(parameter.length());
          final double value = parameter.getDouble(i);
          parameter.putScalar(i, value + step);
          final double plus = network.score(batch, true);
          parameter.putScalar(i, value - step);
          final double minus = network.score(batch, true);
          parameter.putScalar(i, value);
          // the score is the batch's mean loss, the gradient its sum
          final double numeric = (plus - minus) / (2 * step) * examples;
          final double analytic = gradient.getValue().getDouble(i);
          squares += numeric * numeric;
          differences += (numeric - analytic) * (numeric - analytic);
        }
        final double error = Math.sqrt(differences / squares);
        errors.add(String.format("%s_%s %.1e", name, gradient.getKey(), error));
        worst = Math.max(worst, error);
      }
    }
    assertTrue(worst < 1e-2, "relative error against central differences: " + errors);
  }

  private static void gradient(ComputationGraph network, INDArray[] x, INDArray y) {
    network.setInputs(x);
    network.setLabels(y);
    network.computeGradientAndScore();
  }

  private static INDArray[] doubles(INDArray[] arrays) {
    final INDArray[] cast = new INDArray[arrays.length];
    for (int i = 0; i < arrays.length; i++) {
      cast[i] = arrays[i].castTo(DataType.DOUBLE);
    }
    return cast;
  }
}
