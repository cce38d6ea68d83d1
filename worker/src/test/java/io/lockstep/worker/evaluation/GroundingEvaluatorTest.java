package io.lockstep.worker.evaluation;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

/**
 * The grounding evaluator's prediction (the most confident box) and its intersection over union.
 */
class GroundingEvaluatorTest {
  /** The prediction is the box of the highest objectness, in fractions of the side. */
  @Test
  void predictionIsTheMostConfidentBox() {
    final int anchors = 3;
    final int depth = 5 + 3;
    final int grid = 8;
    final int cells = grid * grid;
    final float[] values = new float[2 * anchors * depth * cells];
    java.util.Arrays.fill(values, 0.1f);
    // image 1, anchor 2, cell (x 5, y 3): centre (5.5, 3.25), 2 x 1 cells
    final int at = ((anchors + 2) * depth) * cells + 3 * grid + 5;
    values[at] = 0.5f;
    values[at + cells] = 0.25f;
    values[at + 2 * cells] = 2f;
    values[at + 3 * cells] = 1f;
    values[at + 4 * cells] = 0.9f;
    // a near miss in image 0, another anchor and cell
    values[(1 * depth) * cells + 4 * cells + 7] = 0.8f;
    assertArrayEquals(
        new double[] {4.5 / 8, 2.75 / 8, 6.5 / 8, 3.75 / 8},
        GroundingEvaluator.best(values, 1, anchors, depth, grid),
        1e-6);
    final double[] other = GroundingEvaluator.best(values, 0, anchors, depth, grid);
    assertEquals((7 + 0.1 - 0.05) / 8, other[0], 1e-6);
  }

  @Test
  void iouOfBoxes() {
    final double[] unit = {0, 0, 1, 1};
    assertEquals(1.0, GroundingEvaluator.iou(unit, unit), 1e-12);
    assertEquals(0.25, GroundingEvaluator.iou(unit, new double[] {0, 0, 0.5, 0.5}), 1e-12);
    assertEquals(1 / 3.0, GroundingEvaluator.iou(unit, new double[] {0.5, 0, 1.5, 1}), 1e-12);
    assertEquals(0.0, GroundingEvaluator.iou(unit, new double[] {1, 1, 2, 2}), 1e-12);
    // a predicted box with its corners swapped is empty
    assertEquals(0.0, GroundingEvaluator.iou(new double[] {1, 1, 0, 0}, unit), 1e-12);
  }
}
