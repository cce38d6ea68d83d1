package io.lockstep.worker.evaluation;

import java.util.List;

/**
 * What a network made of one test image, for the run's report.
 *
 * @param index the image in the test split
 * @param label its true class (for a scene or a phrase: the target's), or -1
 * @param predicted the predicted class, or -1 where the task has no single class
 * @param correct whether the prediction counts as right: the class, every box found and none extra
 *     (IoU >= 0.5), or the phrase's box found (IoU >= 0.5)
 * @param caption what the image shows about the truth beyond its class (a grounding phrase), or
 *     empty
 * @param truth the true boxes, empty for classification
 * @param boxes the predicted boxes, empty for classification
 */
public record Prediction(
    int index,
    int label,
    int predicted,
    boolean correct,
    String caption,
    List<Box> truth,
    List<Box> boxes) {

  /** IoU at which a predicted box counts as finding a true one. */
  public static final double MATCH_IOU = 0.5;

  /**
   * A box on the image, its corners as fractions of the image's width and height.
   *
   * @param kind its class
   * @param score the network's confidence, 1 for a true box
   * @param x1 left
   * @param y1 top
   * @param x2 right
   * @param y2 bottom
   */
  public record Box(int kind, double score, double x1, double y1, double x2, double y2) {}
}
