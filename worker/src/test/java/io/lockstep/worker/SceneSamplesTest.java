package io.lockstep.worker;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.lockstep.conf.ConfigurationException;
import io.lockstep.conf.JobConfig;
import io.lockstep.data.Shapes;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.deeplearning4j.nn.layers.objdetect.DetectedObject;
import org.deeplearning4j.nn.layers.objdetect.YoloUtils;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * Scenes as a detector trains on them (YOLOv2's label tensor), the evaluator's decoding of
 * Deeplearning4j's YOLOv2 activations, and the data a detector and a classifier accept.
 */
class SceneSamplesTest {
  private static final double[] MEAN = {0.8, 0.8, 0.8};
  private static final double[] STD = {0.2, 0.2, 0.2};
  private static final double[][] PRIORS = {{1.2, 1.2}, {2.2, 2.2}, {3.2, 3.2}};

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

  /** The evaluator reads boxes where Deeplearning4j's own decoder finds them, on random output. */
  @Test
  void decodingAgreesWithDeeplearning4jsYoloUtils() {
    final SplittableRandom random = new SplittableRandom(11);
    final float[] raw = new float[2 * 3 * 8 * 4 * 4];
    for (int i = 0; i < raw.length; i++) {
      raw[i] = (float) random.nextDouble(-2, 2);
    }
    final INDArray priors = Nd4j.create(PRIORS);
    final INDArray activations =
        YoloUtils.activate(priors, Nd4j.create(raw, new long[] {2, 24, 4, 4}, 'c'));
    final float[] values = activations.dup('c').data().asFloat();
    final List<DetectedObject> reference = YoloUtils.getPredictedObjects(priors, activations, 0, 0);
    final List<MeanAveragePrecision.Box> ours = new ArrayList<>();
    for (int i = 0; i < 2; i++) {
      ours.addAll(DetectionEvaluator.decode(values, i, i, 3, 3, 4));
    }
    int matched = 0;
    for (DetectedObject object : reference) {
      for (MeanAveragePrecision.Box box : ours) {
        if (box.image() == object.getExampleNumber()
            && Math.abs(box.x1() - object.getTopLeftXY()[0]) < 1e-5
            && Math.abs(box.y1() - object.getTopLeftXY()[1]) < 1e-5
            && Math.abs(box.x2() - object.getBottomRightXY()[0]) < 1e-5
            && Math.abs(box.y2() - object.getBottomRightXY()[1]) < 1e-5) {
          matched++;
          break;
        }
      }
    }
    assertEquals(reference.size(), matched, "boxes found by YoloUtils and by the evaluator");
    assertEquals(2 * 3 * 16, reference.size());
  }

  @Test
  void perfectActivationsScoreOneAndShiftedOnesZero() {
    final SceneSamples scenes = new SceneSamples(5, 0, 30, 64, 8, MEAN, STD);
    final List<MeanAveragePrecision.Box> perfect = new ArrayList<>();
    final List<MeanAveragePrecision.Box> shifted = new ArrayList<>();
    final List<MeanAveragePrecision.Box> truth = new ArrayList<>();
    for (int i = 0; i < scenes.count(); i++) {
      final float[] values = new float[3 * 8 * 64];
      for (Shapes.Box box : scenes.boxes(i)) {
        final double cx = (box.x1() + box.x2()) / 16.0;
        final double cy = (box.y1() + box.y2()) / 16.0;
        final int at = (int) cy * 8 + (int) cx;
        values[at] = (float) (cx - (int) cx);
        values[at + 64] = (float) (cy - (int) cy);
        values[at + 2 * 64] = (box.x2() - box.x1()) / 8f;
        values[at + 3 * 64] = (box.y2() - box.y1()) / 8f;
        values[at + 4 * 64] = 0.9f;
        values[at + (5 + box.kind()) * 64] = 1f;
        truth.add(
            new MeanAveragePrecision.Box(
                i, box.kind(), 1, box.x1() / 8.0, box.y1() / 8.0, box.x2() / 8.0, box.y2() / 8.0));
      }
      final List<MeanAveragePrecision.Box> decoded =
          DetectionEvaluator.suppress(DetectionEvaluator.decode(values, 0, i, 3, 3, 8));
      perfect.addAll(decoded);
      for (MeanAveragePrecision.Box box : decoded) {
        final double w = box.x2() - box.x1();
        shifted.add(
            new MeanAveragePrecision.Box(
                i, box.kind(), box.score(), box.x1() + w, box.y1(), box.x2() + w, box.y2()));
      }
    }
    assertEquals(1.0, MeanAveragePrecision.of(perfect, truth, 3, 0.5), 1e-9);
    assertEquals(0.0, MeanAveragePrecision.of(shifted, truth, 3, 0.5), 1e-9);
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
