package io.lockstep.worker.evaluation;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.lockstep.data.Shapes;
import io.lockstep.worker.input.SceneSamples;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.deeplearning4j.nn.layers.objdetect.DetectedObject;
import org.deeplearning4j.nn.layers.objdetect.YoloUtils;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/** The detection evaluator's decoding of YOLOv2 activations, and its mean average precision. */
class DetectionEvaluatorTest {
  private static final double[] MEAN = {0.8, 0.8, 0.8};
  private static final double[] STD = {0.2, 0.2, 0.2};
  private static final double[][] PRIORS = {{1.2, 1.2}, {2.2, 2.2}, {3.2, 3.2}};

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
}
