package io.lockstep.worker;

import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/** One split of a dataset as workers and the evaluator batch it: images by index, normalized. */
public interface Samples {
  /**
   * @return the number of images
   */
  int count();

  /**
   * The class of one image.
   *
   * @param index the image
   * @return its label, below the dataset's class count
   */
  int label(int index);

  /**
   * Features as {@code [n, channels, height, width]}, normalized, each image transformed as the
   * split transforms it in {@code epoch} (random transforms seeded by the job's seed, the epoch and
   * the image, so any worker makes the same tensor).
   *
   * @param indices the images
   * @param epoch the epoch, for random transforms
   * @return the batch's features
   */
  INDArray features(int[] indices, int epoch);

  /**
   * Labels as one-hot {@code [n, classes]}.
   *
   * @param indices the images
   * @param classes the model's output width, at least the dataset's class count
   * @return one row per image
   */
  default INDArray labels(int[] indices, int classes) {
    final float[] y = new float[indices.length * classes];
    for (int i = 0; i < indices.length; i++) {
      y[i * classes + label(indices[i])] = 1f;
    }
    return Nd4j.create(y, new long[] {indices.length, classes}, 'c');
  }

  /**
   * Consecutive indices, an evaluation batch.
   *
   * @param from the first
   * @param count how many
   * @return {@code from .. from + count - 1}
   */
  static int[] range(int from, int count) {
    final int[] indices = new int[count];
    for (int i = 0; i < count; i++) {
      indices[i] = from + i;
    }
    return indices;
  }

  /**
   * Expands a normalization setting to one value per channel.
   *
   * @param values one value for every channel, or one per channel
   * @param channels the images' channels
   * @param key the setting's name, for the error
   * @return one value per channel
   * @throws io.lockstep.conf.ConfigurationException when there are neither 1 nor {@code channels}
   *     values
   */
  static double[] perChannel(java.util.List<Double> values, int channels, String key) {
    if (values.size() == 1) {
      final double[] all = new double[channels];
      java.util.Arrays.fill(all, values.get(0));
      return all;
    }
    if (values.size() != channels) {
      throw new io.lockstep.conf.ConfigurationException(
          key
              + " = "
              + values
              + " has "
              + values.size()
              + " values but the images have "
              + channels
              + " channel(s); give one number or one per channel");
    }
    return values.stream().mapToDouble(Double::doubleValue).toArray();
  }
}
