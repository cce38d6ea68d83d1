package io.lockstep.worker.input;

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
   * Features as {@code [n, channels, height, width]} (or the split's own layout, {@link
   * #featureShape}), normalized, each image transformed as the split transforms it in {@code epoch}
   * (random transforms seeded by the job's seed, the epoch and the image, so any worker makes the
   * same tensor).
   *
   * @param indices the images
   * @param epoch the epoch, for random transforms
   * @return the batch's features, a new array
   */
  default INDArray features(int[] indices, int epoch) {
    final long[] shape = featureShape(indices.length);
    final float[] x = new float[Math.toIntExact(length(shape))];
    features(indices, epoch, x);
    return Nd4j.create(x, shape, 'c');
  }

  /**
   * Writes the features of {@link #features(int[], int)} into {@code into}, row-major, every value
   * of it, so a caller can reuse one array for every batch of a size.
   *
   * @param indices the images
   * @param epoch the epoch, for random transforms
   * @param into exactly {@code featureShape(indices.length)}'s element count
   */
  void features(int[] indices, int epoch, float[] into);

  /**
   * @param rows the batch's images
   * @return the shape of a batch's features
   */
  long[] featureShape(int rows);

  /**
   * Labels as one-hot {@code [n, classes]} (or the split's own layout, {@link #labelShape}).
   *
   * @param indices the images
   * @param classes the model's output width, at least the dataset's class count
   * @return one row per image, a new array
   */
  default INDArray labels(int[] indices, int classes) {
    final long[] shape = labelShape(indices.length, classes);
    final float[] y = new float[Math.toIntExact(length(shape))];
    labels(indices, classes, y);
    return Nd4j.create(y, shape, 'c');
  }

  /**
   * Writes the labels of {@link #labels(int[], int)} into {@code into}, every value of it.
   *
   * @param indices the images
   * @param classes the model's output width
   * @param into exactly {@code labelShape(indices.length, classes)}'s element count
   */
  default void labels(int[] indices, int classes, float[] into) {
    java.util.Arrays.fill(into, 0f);
    for (int i = 0; i < indices.length; i++) {
      into[i * classes + label(indices[i])] = 1f;
    }
  }

  /**
   * @param rows the batch's images
   * @param classes the model's output width
   * @return the shape of a batch's labels
   */
  default long[] labelShape(int rows, int classes) {
    return new long[] {rows, classes};
  }

  /**
   * @param shape an array's shape
   * @return its element count
   */
  static long length(long[] shape) {
    long length = 1;
    for (long d : shape) {
      length *= d;
    }
    return length;
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
