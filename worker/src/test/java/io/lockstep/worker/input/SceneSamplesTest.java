package io.lockstep.worker.input;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.lockstep.conf.ConfigurationException;
import io.lockstep.conf.JobConfig;
import io.lockstep.data.Shapes;
import io.lockstep.worker.evaluation.TestMetric;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * Scenes as a detector trains on them (YOLOv2's label tensor) and the data a detector and a
 * classifier accept.
 */
class SceneSamplesTest {
  private static final double[] MEAN = {0.8, 0.8, 0.8};
  private static final double[] STD = {0.2, 0.2, 0.2};

  @Test
  void labelsHoldEachShapesCornersAndClassInItsCentreCell() {
    final SceneSamples scenes = new SceneSamples(3, 0, 20, 64, 8, MEAN, STD);
    final int[] indices = {0, 5, 19};
    final INDArray labels = scenes.labels(indices, 3);
    assertEquals(List.of(3L, 7L, 8L, 8L), List.of(labels.shape()[0], labels.shape()[1], 8L, 8L));
    for (int i = 0; i < indices.length; i++) {
      final List<Shapes.Box> boxes = scenes.boxes(indices[i]);
      double classMarks = labels.get(point(i), interval(4, 7)).sumNumber().doubleValue();
      assertEquals(boxes.size(), classMarks, 0, "one class mark per shape");
      for (Shapes.Box box : boxes) {
        final int gx = (box.x1() + box.x2()) / 16;
        final int gy = (box.y1() + box.y2()) / 16;
        assertEquals(box.x1() / 8.0, labels.getDouble(i, 0, gy, gx), 1e-6);
        assertEquals(box.y1() / 8.0, labels.getDouble(i, 1, gy, gx), 1e-6);
        assertEquals(box.x2() / 8.0, labels.getDouble(i, 2, gy, gx), 1e-6);
        assertEquals(box.y2() / 8.0, labels.getDouble(i, 3, gy, gx), 1e-6);
        assertEquals(1.0, labels.getDouble(i, 4 + box.kind(), gy, gx));
      }
    }
    final INDArray features = scenes.features(indices, 0);
    assertEquals(List.of(3L, 3L, 64L, 64L), List.of(features.shape()[0], 3L, 64L, 64L));
    // the scene's first pixel, red channel, normalized
    final byte[] pixels = Shapes.scene(3, 5, 64).pixels();
    assertEquals(((pixels[0] & 0xff) / 255.0 - 0.8) / 0.2, features.getDouble(1, 0, 0, 0), 1e-5);
  }

  @Test
  void detectorsTakeScenesAndClassifiersFiles() {
    final JobConfig classifierOnScenes =
        JobConfig.load()
            .with(Map.of("lockstep.model.name", "lenet", "lockstep.data.format", "shapes"));
    final ConfigurationException scenes =
        assertThrows(ConfigurationException.class, () -> Datasets.training(classifierOnScenes));
    assertTrue(scenes.getMessage().contains("shapes-yolo"), scenes.getMessage());
    final JobConfig detectorOnFiles =
        JobConfig.load()
            .with(
                Map.of(
                    "lockstep.model.name",
                    "shapes-yolo",
                    "lockstep.data.dir",
                    "/usr/share/datasets/fashion-mnist"));
    final ConfigurationException files =
        assertThrows(ConfigurationException.class, () -> Datasets.test(detectorOnFiles));
    assertTrue(files.getMessage().contains("lockstep.data.format=shapes"), files.getMessage());
    final JobConfig detector =
        JobConfig.load()
            .with(
                Map.of(
                    "lockstep.model.name", "shapes-yolo",
                    "lockstep.data.format", "shapes",
                    "lockstep.data.train-samples", "100"));
    assertEquals(100, Datasets.training(detector).count());
    assertEquals(Datasets.TEST_SCENES, Datasets.test(detector).count());
    assertEquals("map50", TestMetric.of(detector, Datasets.test(detector)).name());
  }

  private static org.nd4j.linalg.indexing.INDArrayIndex point(int i) {
    return org.nd4j.linalg.indexing.NDArrayIndex.point(i);
  }

  private static org.nd4j.linalg.indexing.INDArrayIndex interval(int from, int to) {
    return org.nd4j.linalg.indexing.NDArrayIndex.interval(from, to);
  }
}
