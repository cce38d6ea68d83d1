package io.lockstep.worker.input;

import io.lockstep.data.Image;
import io.lockstep.data.ImageFolder;
import io.lockstep.data.Transforms;

/**
 * An ImageNet-style folder as batches: each image decoded when a batch asks for it (only this
 * worker's slice is ever read) and transformed to the model's input as torchvision's reference
 * training does. Training: RandomResizedCrop to the model's size, RandomHorizontalFlip, ToTensor,
 * Normalize. Evaluation: Resize to 256/224 of the model's size, CenterCrop, ToTensor, Normalize.
 */
final class FolderSamples implements Samples {
  private final ImageFolder folder;
  private final Transforms.Pipeline pipeline;
  private final long seed;
  private final int size;

  private FolderSamples(ImageFolder folder, Transforms.Pipeline pipeline, long seed, int size) {
    this.folder = folder;
    this.pipeline = pipeline;
    this.seed = seed;
    this.size = size;
  }

  /**
   * The training split: random crops and flips, seeded per (seed, epoch, image).
   *
   * @param folder the listed split
   * @param size the model's input side
   * @param mean per-channel normalization mean
   * @param std per-channel normalization standard deviation
   * @param seed the job's seed
   * @return the samples
   */
  public static FolderSamples training(
      ImageFolder folder, int size, double[] mean, double[] std, long seed) {
    return new FolderSamples(
        folder,
        Transforms.compose(
            Transforms.randomResizedCrop(size),
            Transforms.randomHorizontalFlip(0.5),
            Transforms.toTensor(),
            Transforms.normalize(mean, std)),
        seed,
        size);
  }

  /**
   * The validation split: the shorter side resized to {@code size * 256 / 224}, the center {@code
   * size x size} cropped; nothing random.
   *
   * @param folder the listed split
   * @param size the model's input side
   * @param mean per-channel normalization mean
   * @param std per-channel normalization standard deviation
   * @return the samples
   */
  public static FolderSamples evaluation(
      ImageFolder folder, int size, double[] mean, double[] std) {
    return new FolderSamples(
        folder,
        Transforms.compose(
            Transforms.resize((int) Math.round(size * 256.0 / 224.0)),
            Transforms.centerCrop(size),
            Transforms.toTensor(),
            Transforms.normalize(mean, std)),
        0,
        size);
  }

  @Override
  public int count() {
    return folder.count();
  }

  @Override
  public int label(int index) {
    return folder.labels()[index];
  }

  @Override
  public void features(int[] indices, int epoch, float[] into) {
    final int imageSize = 3 * size * size;
    for (int i = 0; i < indices.length; i++) {
      final Image image = pipeline.apply(folder.decode(indices[i]), seed, epoch, indices[i]);
      System.arraycopy(image.pixels(), 0, into, i * imageSize, imageSize);
    }
  }

  @Override
  public long[] featureShape(int rows) {
    return new long[] {rows, 3, size, size};
  }
}
