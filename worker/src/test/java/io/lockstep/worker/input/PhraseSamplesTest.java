package io.lockstep.worker.input;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.lockstep.conf.JobConfig;
import io.lockstep.data.Grounding;
import io.lockstep.data.Shapes;
import io.lockstep.models.ModelZoo;
import java.util.Map;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.indexing.NDArrayIndex;

/**
 * Grounding batches: one row per example, split into the network's two inputs, YOLOv2's labels of
 * the named shape.
 */
class PhraseSamplesTest {

  @Test
  void rowsCarryThePixelsAndTokensAndLabelsTheNamedBox() {
    assertEquals(Grounding.VOCABULARY.size(), ModelZoo.VOCABULARY);
    assertEquals(Grounding.PHRASE_TOKENS, ModelZoo.PHRASE_TOKENS);
    final PhraseSamples samples =
        new PhraseSamples(
            9, 0, 10, 64, 8, new double[] {0.8, 0.8, 0.8}, new double[] {0.2, 0.2, 0.2});
    final int[] indices = {2, 7};
    final INDArray rows = samples.features(indices, 0);
    assertEquals(3 * 64 * 64 + 6, rows.size(1));
    final INDArray labels = samples.labels(indices, 3);
    final JobConfig job = JobConfig.load().with(Map.of("lockstep.model.name", "shapes-grounding"));
    final ComputationGraph network = new ComputationGraph(ModelZoo.configuration(job, 1));
    network.init();
    final INDArray[] inputs = ModelZoo.inputs(network, rows);
    assertArrayEquals(new long[] {2, 3, 64, 64}, inputs[0].shape());
    assertArrayEquals(new long[] {2, 6}, inputs[1].shape());
    for (int i = 0; i < indices.length; i++) {
      final Grounding.Example example = Grounding.example(9, indices[i], 64);
      final byte[] pixels = example.scene().pixels();
      // the blue plane's last pixel
      assertEquals(
          ((pixels[pixels.length - 1] & 0xff) / 255.0 - 0.8) / 0.2,
          inputs[0].getDouble(i, 2, 63, 63),
          1e-5);
      for (int t = 0; t < 6; t++) {
        assertEquals(example.tokens()[t], inputs[1].getInt(i, t));
      }
      final Shapes.Box box = example.target();
      final int gx = (box.x1() + box.x2()) / 16;
      final int gy = (box.y1() + box.y2()) / 16;
      assertEquals(box.x1() / 8.0, labels.getDouble(i, 0, gy, gx), 1e-6);
      assertEquals(box.y2() / 8.0, labels.getDouble(i, 3, gy, gx), 1e-6);
      assertEquals(1.0, labels.getDouble(i, 4 + box.kind(), gy, gx));
      // the named shape alone: one cell marked
      assertEquals(
          1.0,
          labels.get(NDArrayIndex.point(i), NDArrayIndex.interval(4, 7)).sumNumber().doubleValue());
      assertArrayEquals(
          new double[] {box.x1() / 64.0, box.y1() / 64.0, box.x2() / 64.0, box.y2() / 64.0},
          samples.box(indices[i]),
          1e-12);
    }
    assertArrayEquals(new long[] {2, 3 * (5 + 3), 8, 8}, network.output(false, inputs)[0].shape());
  }
}
