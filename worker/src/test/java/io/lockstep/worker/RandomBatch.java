package io.lockstep.worker;

import io.lockstep.models.ModelZoo;
import java.util.SplittableRandom;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * A batch of a model's shape for tests: pixels uniform in [-1, 1), one random class per image.
 *
 * @param features {@code [n, channels, height, width]}
 * @param labels one-hot {@code [n, classes]}
 */
public record RandomBatch(INDArray features, INDArray labels) {
  /**
   * Draws a batch.
   *
   * @param spec the model
   * @param batch images
   * @param seed what draws them
   * @return the batch
   */
  public static RandomBatch of(ModelZoo.Spec spec, int batch, long seed) {
    final SplittableRandom random = new SplittableRandom(seed);
    final float[] pixels = new float[batch * spec.channels() * spec.height() * spec.width()];
    for (int i = 0; i < pixels.length; i++) {
      pixels[i] = (float) random.nextDouble(-1, 1);
    }
    final INDArray features =
        Nd4j.create(pixels, new long[] {batch, spec.channels(), spec.height(), spec.width()}, 'c');
    final INDArray labels = Nd4j.zeros(DataType.FLOAT, batch, spec.classes());
    for (int i = 0; i < batch; i++) {
      labels.putScalar(i, random.nextInt(spec.classes()), 1f);
    }
    return new RandomBatch(features, labels);
  }
}
