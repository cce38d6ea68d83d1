package io.lockstep.worker;

import org.deeplearning4j.nn.graph.ComputationGraph;
import org.nd4j.linalg.api.ndarray.INDArray;

/** Classification accuracy of a network on a labeled split, transformed as for evaluation. */
public final class Evaluator implements TestMetric {
  private final Samples samples;
  private final int batchSize;

  /**
   * Creates an evaluator.
   *
   * @param samples the labeled split
   * @param batchSize images per forward pass
   */
  public Evaluator(Samples samples, int batchSize) {
    this.samples = samples;
    this.batchSize = batchSize;
  }

  @Override
  public String name() {
    return "test_accuracy";
  }

  /** The fraction of images whose most probable class is their label. */
  @Override
  public double score(ComputationGraph network) {
    long correct = 0;
    for (int from = 0; from < samples.count(); from += batchSize) {
      final int[] indices = Samples.range(from, Math.min(batchSize, samples.count() - from));
      // the first output is the prediction; others are auxiliary classifiers (GoogLeNet's)
      final INDArray predicted = network.output(false, samples.features(indices, 0))[0].argMax(1);
      for (int i = 0; i < indices.length; i++) {
        if (predicted.getInt(i) == samples.label(indices[i])) {
          correct++;
        }
      }
    }
    return (double) correct / samples.count();
  }
}
