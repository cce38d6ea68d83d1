package io.lockstep.worker;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.lockstep.conf.JobConfig;
import io.lockstep.models.ModelZoo;
import io.lockstep.models.SampleDropout;
import io.lockstep.worker.input.RandomBatch;
import java.util.Map;
import java.util.stream.Stream;
import org.deeplearning4j.nn.api.Layer;
import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * Every zoo model takes a training step as a worker takes it, on the oneDNN engine: forward,
 * backward, the optimizer (a detector on random boxes). Every layer with parameters gets a finite,
 * non-zero gradient (GoogLeNet's auxiliary classifiers included) and every trainable parameter the
 * optimizer's update.
 */
class ModelZooStepTest {

  static Stream<String> models() {
    return ModelZoo.all().stream().map(ModelZoo.Spec::name);
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("models")
  void everyModelTakesATrainingStep(String model) {
    final ModelZoo.Spec spec = ModelZoo.spec(model);
    final ComputationGraphConfiguration configuration =
        ModelZoo.configuration(
            JobConfig.load()
                .with(
                    Map.of(
                        "lockstep.model.name", model,
                        "lockstep.optimizer.name", "sgd",
                        "lockstep.optimizer.learning-rate", "0.01")),
            10);
    // ImageNet models at 224x224 take two images: the shapes are the point, not the batch
    final int batch = spec.height() > 64 ? 2 : 8;
    final RandomBatch drawn = RandomBatch.of(spec, batch, model.hashCode());
    final INDArray features = drawn.features();
    final INDArray labels = drawn.labels();
    try (Replica replica = Replica.create(configuration)) {
      final String engine = replica.engine();
      // the oneDNN engine computes every layer of every zoo model
      assertEquals("onednn", engine, model + " computes on " + engine);
      assertEquals(ModelZoo.trainableParameters(configuration), replica.trainableParameterCount());
      final long[] samples = new long[batch];
      for (int i = 0; i < batch; i++) {
        samples[i] = SampleDropout.sampleKey(1, 0, i);
      }
      replica.computeGradients(features, labels, samples, 1);
      final double loss = replica.lastLoss();
      // cross-entropy of a near-uniform prediction, plus GoogLeNet's two auxiliaries at 0.3
      assertTrue(Double.isFinite(loss) && loss > 0, model + " loss " + loss);
      int layers = 0;
      for (Layer layer : replica.network().getLayers()) {
        if (layer.numParams() == 0) {
          continue;
        }
        final String name = layer.conf().getLayer().getLayerName();
        final INDArray gradient = layer.getGradientsViewArray();
        assertEquals(0, gradient.isNaN().castTo(DataType.INT).sumNumber().intValue(), name);
        assertEquals(0, gradient.isInfinite().castTo(DataType.INT).sumNumber().intValue(), name);
        assertNotEquals(0.0, gradient.norm2Number().doubleValue(), name + " has no gradient");
        layers++;
      }
      assertTrue(layers >= 3, model + ": " + layers + " layers with parameters");
      final INDArray before = replica.parametersCopy();
      replica.applyUpdate(batch, 0);
      final INDArray step = replica.network().params().sub(before);
      assertEquals(0, step.isNaN().castTo(DataType.INT).sumNumber().intValue(), model);
      assertTrue(step.norm2Number().doubleValue() > 0, model + " did not move");
      final INDArray output =
          replica.network().output(false, ModelZoo.inputs(replica.network(), features))[0];
      if (spec.task() != ModelZoo.Task.CLASSIFICATION) {
        // per cell, each anchor's box, objectness and class probabilities
        assertEquals(0, output.size(1) % (5 + spec.classes()), model + " anchors x (5 + classes)");
        assertEquals(spec.grid(), output.size(2), model + " grid");
      } else {
        assertEquals(spec.classes(), output.size(1), model + " classes");
      }
    }
  }
}
