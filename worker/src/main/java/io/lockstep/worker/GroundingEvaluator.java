package io.lockstep.worker;

import io.lockstep.models.ModelZoo;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.nd4j.linalg.api.ndarray.INDArray;

/** A grounding model's mean IoU between the box it predicts and the box the phrase names. */
public final class GroundingEvaluator implements TestMetric {
  private final PhraseSamples examples;
  private final int batchSize;

  /**
   * Creates the evaluator.
   *
   * @param examples the test examples
   * @param batchSize examples per forward pass
   */
  public GroundingEvaluator(PhraseSamples examples, int batchSize) {
    this.examples = examples;
    this.batchSize = batchSize;
  }

  @Override
  public String name() {
    return "mean_iou";
  }

  @Override
  public double score(ComputationGraph network) {
    double sum = 0;
    for (int from = 0; from < examples.count(); from += batchSize) {
      final int[] indices = Samples.range(from, Math.min(batchSize, examples.count() - from));
      final INDArray predicted =
          network.output(false, ModelZoo.inputs(network, examples.features(indices, 0)))[0];
      for (int i = 0; i < indices.length; i++) {
        sum += iou(predicted.getRow(i).toDoubleVector(), examples.box(indices[i]));
      }
    }
    return sum / examples.count();
  }

  /**
   * Intersection over union of two boxes {@code (x1, y1, x2, y2)}; a predicted box with a corner
   * past the other counts as empty.
   *
   * @param a a box
   * @param b a box
   * @return IoU in [0, 1]
   */
  static double iou(double[] a, double[] b) {
    final double w = Math.min(a[2], b[2]) - Math.max(a[0], b[0]);
    final double h = Math.min(a[3], b[3]) - Math.max(a[1], b[1]);
    if (w <= 0 || h <= 0) {
      return 0;
    }
    final double intersection = w * h;
    final double union =
        Math.max(0, a[2] - a[0]) * Math.max(0, a[3] - a[1])
            + Math.max(0, b[2] - b[0]) * Math.max(0, b[3] - b[1])
            - intersection;
    return intersection / union;
  }
}
