package io.lockstep.worker.input;

import io.lockstep.models.ModelZoo;
import java.util.SplittableRandom;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * A batch of a model's shape for benchmarks and tests: pixels uniform in [-1, 1), one random class
 * per image (for a detector or a grounding model, YOLOv2's labels of one random box of a random
 * class; a grounding model's features are rows of pixels and random token ids).
 *
 * @param features {@code [n, channels, height, width]}, or a grounding model's rows
 * @param labels one-hot {@code [n, classes]}, or YOLOv2's {@code [n, 4 + classes, grid, grid]}
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
    final int pixels = spec.channels() * spec.height() * spec.width();
    final INDArray features;
    if (spec.task() == ModelZoo.Task.GROUNDING) {
      final int row = pixels + ModelZoo.PHRASE_TOKENS;
      final float[] rows = new float[batch * row];
      for (int i = 0; i < batch; i++) {
        for (int p = 0; p < pixels; p++) {
          rows[i * row + p] = (float) random.nextDouble(-1, 1);
        }
        for (int t = pixels; t < row; t++) {
          rows[i * row + t] = random.nextInt(ModelZoo.VOCABULARY);
        }
      }
      features = Nd4j.create(rows, new long[] {batch, row}, 'c');
    } else {
      final float[] values = new float[batch * pixels];
      for (int i = 0; i < values.length; i++) {
        values[i] = (float) random.nextDouble(-1, 1);
      }
      features =
          Nd4j.create(
              values, new long[] {batch, spec.channels(), spec.height(), spec.width()}, 'c');
    }
    if (spec.task() != ModelZoo.Task.CLASSIFICATION) {
      final int grid = spec.grid();
      final INDArray boxes = Nd4j.zeros(DataType.FLOAT, batch, 4 + spec.classes(), grid, grid);
      for (int i = 0; i < batch; i++) {
        final int x = random.nextInt(grid - 1);
        final int y = random.nextInt(grid - 1);
        final double side = 0.5 + random.nextDouble();
        boxes.putScalar(new int[] {i, 0, y, x}, x + 0.5 - side / 2);
        boxes.putScalar(new int[] {i, 1, y, x}, y + 0.5 - side / 2);
        boxes.putScalar(new int[] {i, 2, y, x}, x + 0.5 + side / 2);
        boxes.putScalar(new int[] {i, 3, y, x}, y + 0.5 + side / 2);
        boxes.putScalar(new int[] {i, 4 + random.nextInt(spec.classes()), y, x}, 1f);
      }
      return new RandomBatch(features, boxes);
    }
    final INDArray labels = Nd4j.zeros(DataType.FLOAT, batch, spec.classes());
    for (int i = 0; i < batch; i++) {
      labels.putScalar(i, random.nextInt(spec.classes()), 1f);
    }
    return new RandomBatch(features, labels);
  }
}
