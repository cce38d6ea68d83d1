package io.lockstep.worker.evaluation;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.lockstep.worker.evaluation.MeanAveragePrecision.Box;
import java.util.List;
import org.junit.jupiter.api.Test;

class MeanAveragePrecisionTest {
  private static Box truth(int image, int kind, double x) {
    return new Box(image, kind, 0, x, 0, x + 10, 10);
  }

  private static Box detection(int image, int kind, double score, double x) {
    return new Box(image, kind, score, x, 0, x + 10, 10);
  }

  @Test
  void perfectDetectionsScoreOne() {
    final List<Box> truth = List.of(truth(0, 0, 0), truth(0, 1, 20), truth(1, 0, 5));
    final List<Box> found =
        List.of(detection(0, 0, 0.9, 1), detection(0, 1, 0.8, 20), detection(1, 0, 0.7, 5));
    assertEquals(1.0, MeanAveragePrecision.of(found, truth, 3, 0.5), 1e-12);
  }

  @Test
  void aHandComputedCase() {
    // class 0: 2 boxes. Ranked: TP (0.9), FP (0.8, wrong place), TP (0.7)
    // precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1 -> envelope 1, 2/3, 2/3 -> AP = 1/2*1 + 1/2*2/3
    final List<Box> truth = List.of(truth(0, 0, 0), truth(1, 0, 0));
    final List<Box> found =
        List.of(detection(0, 0, 0.9, 0), detection(0, 0, 0.8, 40), detection(1, 0, 0.7, 2));
    assertEquals(0.5 + 1.0 / 3, MeanAveragePrecision.of(found, truth, 1, 0.5), 1e-12);
  }

  @Test
  void duplicatesWrongClassesAndLowOverlapAreFalsePositives() {
    final List<Box> truth = List.of(truth(0, 0, 0));
    // IoU of a 10-wide box shifted by 4: 6*10 / (200 - 60) = 0.43 < 0.5
    assertEquals(
        0.0, MeanAveragePrecision.of(List.of(detection(0, 0, 0.9, 4)), truth, 1, 0.5), 1e-12);
    assertEquals(
        1.0, MeanAveragePrecision.of(List.of(detection(0, 0, 0.9, 4)), truth, 1, 0.4), 1e-12);
    // a duplicate ranked above the hit costs precision at full recall: AP = 1 * 1/2
    assertEquals(
        0.5,
        MeanAveragePrecision.of(
            List.of(detection(0, 0, 0.9, 30), detection(0, 0, 0.5, 0)), truth, 1, 0.5),
        1e-12);
    // the right place with the wrong class finds nothing of class 0, and class 1 has no truth
    assertEquals(
        0.0, MeanAveragePrecision.of(List.of(detection(0, 1, 0.9, 0)), truth, 2, 0.5), 1e-12);
    // a box of another image never matches
    assertEquals(
        0.0, MeanAveragePrecision.of(List.of(detection(1, 0, 0.9, 0)), truth, 1, 0.5), 1e-12);
  }

  @Test
  void classesWithoutTruthAreLeftOutAndNoTruthIsNaN() {
    final List<Box> truth = List.of(truth(0, 2, 0));
    assertEquals(
        1.0, MeanAveragePrecision.of(List.of(detection(0, 2, 0.9, 0)), truth, 3, 0.5), 1e-12);
    assertTrue(Double.isNaN(MeanAveragePrecision.of(List.of(), List.of(), 3, 0.5)));
  }
}
