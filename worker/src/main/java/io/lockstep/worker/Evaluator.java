package io.lockstep.worker;

import java.util.ArrayList;
import java.util.List;
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
    return (double) predict(network).stream().filter(Prediction::correct).count() / samples.count();
  }

  @Override
  public List<Prediction> predict(ComputationGraph network) {
    final List<Prediction> predictions = new ArrayList<>(samples.count());
    for (int from = 0; from < samples.count(); from += batchSize) {
      final int[] indices = Samples.range(from, Math.min(batchSize, samples.count() - from));
      // the first output is the prediction; others are auxiliary classifiers (GoogLeNet's)
      final INDArray features = samples.features(indices, 0);
      final INDArray[] outputs = network.output(false, features);
      final INDArray predicted = outputs[0].argMax(1);
      for (int i = 0; i < indices.length; i++) {
        final int label = samples.label(indices[i]);
        final int guess = predicted.getInt(i);
        predictions.add(
            new Prediction(indices[i], label, guess, guess == label, "", List.of(), List.of()));
      }
      NativeMemory.release(predicted, features);
      NativeMemory.release(outputs);
    }
    return predictions;
  }
}
