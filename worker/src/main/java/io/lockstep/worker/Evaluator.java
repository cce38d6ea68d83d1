package io.lockstep.worker;

import io.lockstep.data.LabeledImages;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.nd4j.linalg.api.ndarray.INDArray;

/** Classification accuracy of a network on a labeled set, normalized as in training. */
public final class Evaluator {
  private final LabeledImages images;
  private final Batches batches;
  private final int batchSize;

  /**
   * Creates an evaluator.
   *
   * @param images the labeled set
   * @param mean normalization mean
   * @param std normalization standard deviation
   * @param batchSize images per forward pass
   */
  public Evaluator(LabeledImages images, double mean, double std, int batchSize) {
    this.images = images;
    this.batches = new Batches(images, mean, std);
    this.batchSize = batchSize;
  }

  /**
   * The fraction of images whose most probable class is their label.
   *
   * @param network the network, in inference mode
   * @return accuracy in [0, 1]
   */
  public double accuracy(ComputationGraph network) {
    long correct = 0;
    for (int from = 0; from < images.count(); from += batchSize) {
      final int[] indices = new int[Math.min(batchSize, images.count() - from)];
      for (int i = 0; i < indices.length; i++) {
        indices[i] = from + i;
      }
      // the first output is the prediction; others are auxiliary classifiers (GoogLeNet's)
      final INDArray predicted = network.output(false, batches.features(indices))[0].argMax(1);
      for (int i = 0; i < indices.length; i++) {
        if (predicted.getInt(i) == (images.labels()[indices[i]] & 0xff)) {
          correct++;
        }
      }
    }
    return (double) correct / images.count();
  }
}
