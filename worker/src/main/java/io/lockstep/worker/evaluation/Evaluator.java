package io.lockstep.worker.evaluation;

import io.lockstep.worker.input.NativeMemory;
import io.lockstep.worker.input.Samples;
import java.util.ArrayList;
import java.util.List;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * Classification accuracy of a network on a labeled split, transformed as for evaluation. One
 * evaluation at a time: the batches' features pass through one array the evaluator keeps.
 */
final class Evaluator implements TestMetric {
  private final Samples samples;
  private final int batchSize;

  /**
   * A full batch's features on the heap, on their way into the network's input: kept from batch to
   * batch and from one evaluation to the next, because a batch of images is megabytes (1,000
   * Fashion-MNIST images are 3.1 MB), which G1 allocates as a humongous object, outside the young
   * generation, one per batch and epoch: in a long run those made the driver's heap grow.
   */
  private float[] staging;

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
      final INDArray features = features(indices);
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

  /** The features of a batch, through {@link #staging} when the batch is a full one. */
  private INDArray features(int[] indices) {
    if (indices.length != batchSize) {
      return samples.features(indices, 0);
    }
    final long[] shape = samples.featureShape(indices.length);
    if (staging == null) {
      staging = new float[Math.toIntExact(Samples.length(shape))];
    }
    samples.features(indices, 0, staging);
    return Nd4j.create(staging, shape, 'c');
  }
}
