package io.lockstep.worker.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.lockstep.conf.JobConfig;
import io.lockstep.conf.Keys;
import io.lockstep.cuda.Network;
import io.lockstep.cuda.Networks;
import io.lockstep.cuda.ReferenceEngine;
import io.lockstep.models.ModelZoo;
import io.lockstep.worker.input.RandomBatch;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * The adapter between Deeplearning4j's zoo models and the CUDA engine's description: the same
 * network as the engine's own, parameters mapped both ways, and the description's semantics (the
 * CPU reference, double precision) giving Deeplearning4j's own gradient.
 */
class GpuNetworkTest {
  @ParameterizedTest
  @CsvSource({"lenet, lenet, 3", "resnet18-cifar, resnet18-cifar, 2"})
  void shouldDescribeTheZooModelAsTheEngineDoesAndComputeDeeplearning4jsGradient(
      String model, String engineName, int batch) throws Exception {
    final ModelZoo.Spec spec = ModelZoo.spec(model);
    final ComputationGraphConfiguration configuration = configuration(model);
    final ComputationGraph network = new ComputationGraph(configuration.clone());
    network.init();
    ModelZoo.initialize(network, 7);
    final GpuNetwork adapted =
        GpuNetwork.describe(network, spec.channels(), spec.height(), spec.width());
    final Network described = adapted.network();
    final Network own = Networks.named(engineName);
    assertEquals(own.parameterCount(), described.parameterCount());
    assertEquals(network.numParams() - normStatistics(network), described.parameterCount());
    // The same nodes and parameters; Deeplearning4j's topological order may place a block's
    // projection before or after its main path.
    assertEquals(signature(own), signature(described));

    final ComputationGraphConfiguration doubles = configuration.clone();
    doubles.setDataType(DataType.DOUBLE);
    final ComputationGraph reference = new ComputationGraph(doubles);
    reference.init(network.params().castTo(DataType.DOUBLE), true);
    final RandomBatch drawn = RandomBatch.of(spec, batch, 3);
    reference.setInputs(drawn.features().castTo(DataType.DOUBLE));
    reference.setLabels(drawn.labels().castTo(DataType.DOUBLE));
    reference.computeGradientAndScore();
    final float[] expected = adapted.gradients(reference, batch);

    final float[] parameters = adapted.parameters(network);
    final double[] doubleParameters = new double[parameters.length];
    for (int i = 0; i < parameters.length; i++) {
      doubleParameters[i] = parameters[i];
    }
    final double[] images = drawn.features().castTo(DataType.DOUBLE).data().asDouble();
    final INDArray classes = drawn.labels().argMax(1);
    final int[] labels = new int[batch];
    for (int i = 0; i < batch; i++) {
      labels[i] = classes.getInt(i);
    }
    final double[] gradient = new double[parameters.length];
    new ReferenceEngine(described).lossAndGradient(doubleParameters, images, labels, gradient);
    double difference = 0;
    double norm = 0;
    for (int i = 0; i < gradient.length; i++) {
      difference += (gradient[i] - expected[i]) * (gradient[i] - expected[i]);
      norm += (double) expected[i] * expected[i];
    }
    final double relative = Math.sqrt(difference / norm);
    assertTrue(relative < 1e-5, model + ": relative error " + relative);
  }

  @Test
  void shouldMapParametersAndGradientsBothWays() throws Exception {
    final ModelZoo.Spec spec = ModelZoo.spec("lenet");
    final ComputationGraph network = new ComputationGraph(configuration("lenet"));
    network.init();
    ModelZoo.initialize(network, 7);
    network.initGradientsView();
    final GpuNetwork adapted =
        GpuNetwork.describe(network, spec.channels(), spec.height(), spec.width());
    final float[] parameters = adapted.parameters(network);
    final INDArray before = network.params().dup();
    adapted.setParameters(network, parameters);
    assertEquals(before, network.params());
    final INDArray fc1 = network.getLayer("fc1").getParam("W");
    final Network.Parameter engineFc1 = adapted.network().parameters().get(4);
    assertEquals(fc1.getFloat(3, 7), parameters[engineFc1.offset() + 7 * 800 + 3]);

    final float[] gradient = parameters.clone();
    adapted.setGradients(network, gradient, 4);
    assertArrayEquals(gradient, adapted.gradients(network, 4), 1e-6f);
    assertThrows(
        IllegalArgumentException.class, () -> adapted.setParameters(network, new float[3]));
  }

  @Test
  void shouldRefuseWhatTheEngineCannotComputeNamingTheLayer() throws Exception {
    final ComputationGraph network = new ComputationGraph(configuration("lenet"));
    network.init();
    final UnsupportedNetworkException small =
        assertThrows(
            UnsupportedNetworkException.class, () -> GpuNetwork.describe(network, 1, 8, 8));
    assertTrue(small.getMessage().contains("too small"), small.getMessage());
  }

  /** Each node's kind and output shape and each parameter's shape, sorted. */
  private static List<String> signature(Network network) {
    final List<String> lines = new ArrayList<>();
    for (int i = 0; i < network.nodes().size(); i++) {
      lines.add(
          network.nodes().get(i).getClass().getSimpleName()
              + Arrays.toString(network.shapes()[i + 1]));
    }
    for (Network.Parameter p : network.parameters()) {
      lines.add("parameter" + Arrays.toString(p.shape()));
    }
    Collections.sort(lines);
    return lines;
  }

  private static ComputationGraphConfiguration configuration(String model) {
    return ModelZoo.configuration(
        JobConfig.load(JobConfig.overrides(Map.of(Keys.MODEL_NAME.name(), model))), 10);
  }

  /** Batch norm's running mean and variance: parameters to Deeplearning4j, state to the engine. */
  private static long normStatistics(ComputationGraph network) {
    long count = 0;
    for (org.deeplearning4j.nn.api.Layer layer : network.getLayers()) {
      for (Map.Entry<String, INDArray> p : layer.paramTable().entrySet()) {
        if (List.of("mean", "var", "log10stdev").contains(p.getKey())) {
          count += p.getValue().length();
        }
      }
    }
    return count;
  }
}
