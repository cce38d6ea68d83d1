package io.lockstep.models;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.lockstep.conf.JobConfig;
import java.util.Map;
import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.graph.LayerVertex;
import org.deeplearning4j.nn.workspace.LayerWorkspaceMgr;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

class SampleDropoutTest {

  @Test
  void shouldKeepOneMinusPOfTheInputsScaledAndTheSameForTheSameSample() {
    final SampleDropout dropout = new SampleDropout(0.3, "fc6");
    final int elements = 100_000;
    final float[] mask = new float[elements];
    dropout.fill(SampleDropout.sampleKey(1, 0, 42), mask, 0, elements);
    final long kept = countKept(mask, dropout.scale());
    // binomial(100000, 0.7): sd 145
    assertTrue(Math.abs(kept - 70_000) < 1_000, kept + " kept");
    final float[] again = new float[elements];
    dropout.fill(SampleDropout.sampleKey(1, 0, 42), again, 0, elements);
    assertArrayEquals(mask, again);
    final float[] otherSample = new float[elements];
    dropout.fill(SampleDropout.sampleKey(1, 0, 43), otherSample, 0, elements);
    final float[] otherEpoch = new float[elements];
    dropout.fill(SampleDropout.sampleKey(1, 1, 42), otherEpoch, 0, elements);
    final float[] otherLayer = new float[elements];
    new SampleDropout(0.3, "fc7").fill(SampleDropout.sampleKey(1, 0, 42), otherLayer, 0, elements);
    for (float[] other : new float[][] {otherSample, otherEpoch, otherLayer}) {
      // independent masks agree on 0.7^2 + 0.3^2 = 58% of the elements
      final long same = agreeing(mask, other);
      assertTrue(Math.abs(same - 58_000) < 1_500, same + " agree");
    }
    assertEquals((float) (1 / 0.7), dropout.scale());
  }

  @Test
  void shouldDropAndBackpropagateThroughTheSameMaskOnDeeplearning4jsLayers() {
    final SampleDropout dropout = new SampleDropout(0.5, "fc");
    final long[] keys = {SampleDropout.sampleKey(3, 2, 7), SampleDropout.sampleKey(3, 2, 9)};
    dropout.samples(keys);
    final INDArray input = Nd4j.rand(DataType.DOUBLE, 2, 50).addi(1);
    final INDArray output = Nd4j.createUninitialized(DataType.DOUBLE, 2, 50);
    dropout.applyDropout(input, output, 0, 0, LayerWorkspaceMgr.noWorkspaces());
    final float[] mask = dropout.masks(2, 50);
    for (int i = 0; i < 100; i++) {
      assertEquals(input.getDouble(i / 50, i % 50) * mask[i], output.getDouble(i / 50, i % 50));
    }
    final INDArray gradient = Nd4j.ones(DataType.DOUBLE, 2, 50);
    final INDArray back = Nd4j.createUninitialized(DataType.DOUBLE, 2, 50);
    dropout.backprop(gradient, back, 0, 0);
    for (int i = 0; i < 100; i++) {
      assertEquals(mask[i], back.getDouble(i / 50, i % 50));
    }
  }

  @Test
  void shouldRefuseAForwardPassWithoutOneKeyPerSample() {
    final SampleDropout dropout = new SampleDropout(0.5, "fc7");
    final INDArray input = Nd4j.ones(DataType.FLOAT, 3, 4);
    final IllegalStateException none =
        assertThrows(
            IllegalStateException.class,
            () -> dropout.applyDropout(input, input.dup(), 0, 0, LayerWorkspaceMgr.noWorkspaces()));
    assertTrue(none.getMessage().contains("layer fc7"), none.getMessage());
    dropout.samples(new long[2]);
    final IllegalStateException two =
        assertThrows(
            IllegalStateException.class,
            () -> dropout.applyDropout(input, input.dup(), 0, 0, LayerWorkspaceMgr.noWorkspaces()));
    assertTrue(two.getMessage().contains("3 samples but 2 sample keys"), two.getMessage());
    assertThrows(IllegalArgumentException.class, () -> new SampleDropout(1, "fc"));
  }

  @Test
  void shouldSurviveTheConfigurationsJson() {
    final ComputationGraphConfiguration configuration =
        ModelZoo.configuration(JobConfig.load().with(Map.of("lockstep.model.name", "vgg16")), 10);
    final ComputationGraphConfiguration read =
        ComputationGraphConfiguration.fromJson(configuration.toJson());
    assertEquals(
        new SampleDropout(0.5, "fc7"),
        ((LayerVertex) read.getVertices().get("fc7")).getLayerConf().getLayer().getIDropout());
    assertEquals(configuration, read);
  }

  private static long countKept(float[] mask, float scale) {
    long kept = 0;
    for (float m : mask) {
      assertTrue(m == 0f || m == scale, "mask value " + m);
      kept += m == 0f ? 0 : 1;
    }
    return kept;
  }

  private static long agreeing(float[] a, float[] b) {
    long same = 0;
    for (int i = 0; i < a.length; i++) {
      same += (a[i] == 0f) == (b[i] == 0f) ? 1 : 0;
    }
    return same;
  }
}
