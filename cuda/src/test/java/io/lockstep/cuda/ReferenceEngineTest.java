package io.lockstep.cuda;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * The CPU reference of a network's semantics against finite differences of its own loss, in double
 * precision, over every op the CUDA engine has.
 */
class ReferenceEngineTest {
  @Test
  void shouldMatchFiniteDifferencesOverEveryOp() {
    final Network network =
        new Network(
            2,
            6,
            6,
            List.of(
                new Network.Conv("a", Network.INPUT, 4, 3, 1, 1, true),
                new Network.BatchNorm("a.bn", 0),
                new Network.Relu("a.relu", 1),
                new Network.Conv("b", 2, 4, 3, 1, 1, false),
                new Network.Add("add", 3, 2),
                new Network.Relu("add.relu", 4),
                new Network.MaxPool("pool", 5, 3, 2, 1),
                new Network.Conv("c", 6, 6, 1, 1, 0, false),
                new Network.GlobalAverage("gap", 7),
                new Network.Dense("fc", 8, 5, true),
                new Network.Relu("fc.relu", 9),
                new Network.Dense("out", 10, 3, true)));
    assertGradientMatches(network, 3);
  }

  @Test
  void shouldMatchFiniteDifferencesThroughAFlattenedDenseLayer() {
    final Network network =
        new Network(
            1,
            7,
            7,
            List.of(
                new Network.Conv("conv", Network.INPUT, 3, 3, 2, 0, true),
                new Network.Relu("relu", 0),
                new Network.MaxPool("pool", 1, 2, 1, 0),
                new Network.Dense("out", 2, 4, true)));
    assertGradientMatches(network, 2);
  }

  private static void assertGradientMatches(Network network, int batch) {
    final SplittableRandom random = new SplittableRandom(11);
    final double[] parameters = new double[network.parameterCount()];
    final float[] initial = network.initialParameters(5);
    for (int i = 0; i < parameters.length; i++) {
      parameters[i] = initial[i] + random.nextDouble(-0.1, 0.1);
    }
    final double[] images =
        new double[batch * network.channels() * network.height() * network.width()];
    for (int i = 0; i < images.length; i++) {
      images[i] = random.nextDouble(-1, 1);
    }
    final int[] labels = new int[batch];
    for (int i = 0; i < batch; i++) {
      labels[i] = random.nextInt(network.classes());
    }
    final ReferenceEngine reference = new ReferenceEngine(network);
    final double[] gradient = new double[parameters.length];
    reference.lossAndGradient(parameters, images, labels, gradient);
    final double[] scratch = new double[parameters.length];
    double difference = 0;
    double norm = 0;
    final double h = 1e-6;
    for (int i = 0; i < parameters.length; i++) {
      final double kept = parameters[i];
      parameters[i] = kept + h;
      final double up = reference.lossAndGradient(parameters, images, labels, scratch);
      parameters[i] = kept - h;
      final double down = reference.lossAndGradient(parameters, images, labels, scratch);
      parameters[i] = kept;
      final double numeric = (up - down) / (2 * h);
      difference += (numeric - gradient[i]) * (numeric - gradient[i]);
      norm += gradient[i] * gradient[i];
    }
    final double relative = Math.sqrt(difference / norm);
    assertTrue(
        relative < 1e-6,
        "relative error " + relative + " over " + parameters.length + " parameters");
  }
}
