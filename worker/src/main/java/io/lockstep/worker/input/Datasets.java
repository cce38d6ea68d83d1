package io.lockstep.worker.input;

import io.lockstep.conf.ConfigurationException;
import io.lockstep.conf.DataFormat;
import io.lockstep.conf.JobConfig;
import io.lockstep.conf.Keys;
import io.lockstep.data.Cifar10;
import io.lockstep.data.ImageFolder;
import io.lockstep.data.LabeledImages;
import io.lockstep.data.Mnist;
import io.lockstep.data.MnistJson;
import io.lockstep.data.Shapes;
import io.lockstep.models.ModelZoo;

/** A job's images: read in {@code lockstep.data.format}, checked against the model's input. */
public final class Datasets {
  /** Training scenes of {@code shapes} when {@code lockstep.data.train-samples} is 0. */
  static final int TRAIN_SCENES = 8000;

  /** Test scenes of {@code shapes}. */
  static final int TEST_SCENES = 1000;

  /**
   * The training split read last in this JVM: decoded images, or a folder's listing.
   *
   * @param key the format, folder and subset it was read for
   * @param images the decoded images; null for a folder
   * @param folder the folder's listing; null for decoded images
   */
  private record TrainingSplit(String key, LabeledImages images, ImageFolder folder) {}

  private static TrainingSplit cachedTrain;

  private Datasets() {}

  /**
   * The training split, as workers batch it. Decoded byte datasets are read once per JVM, folder
   * and format (an executor runs many stages, and the workers of Spark local mode share one JVM); a
   * folder is listed once and its images decoded batch by batch.
   *
   * @param job the job: its data folder or URI, format, model and normalization
   * @return the samples
   * @throws ConfigurationException when the images do not fit the model
   */
  public static Samples training(JobConfig job) {
    if (job.get(Keys.DATA_FORMAT) == DataFormat.SHAPES) {
      final int scenes =
          job.get(Keys.DATA_TRAIN_SAMPLES) == 0 ? TRAIN_SCENES : job.get(Keys.DATA_TRAIN_SAMPLES);
      return scenes(job, job.get(Keys.SEED), 0, scenes);
    }
    checkClassifier(job);
    final TrainingSplit split = trainingSplit(job);
    if (split.folder() != null) {
      final ModelZoo.Spec model = checkFolderFits(job, split.folder());
      return FolderSamples.training(
          split.folder(), model.height(), mean(job, 3), std(job, 3), job.get(Keys.SEED));
    }
    return new Batches(split.images(), job.get(Keys.DATA_MEAN), job.get(Keys.DATA_STD));
  }

  /**
   * The split accuracy is measured on: IDX's and CIFAR-10's test files, a folder's {@code val/}.
   *
   * @param job the job
   * @return the samples
   * @throws ConfigurationException when the images do not fit the model
   */
  public static Samples test(JobConfig job) {
    if (job.get(Keys.DATA_FORMAT) != DataFormat.SHAPES) {
      checkClassifier(job);
    }
    return switch (job.get(Keys.DATA_FORMAT)) {
      case SHAPES -> scenes(job, SceneSamples.TEST_SEED, SceneSamples.TEST_FIRST, TEST_SCENES);
      case IDX, CIFAR10, MNIST_JSON ->
          new Batches(
              checkFits(job, load(job, Mnist.Split.TEST)),
              job.get(Keys.DATA_MEAN),
              job.get(Keys.DATA_STD));
      case FOLDER -> {
        final ImageFolder folder = ImageFolder.list(job.get(Keys.DATA_DIR), "val");
        final ModelZoo.Spec model = checkFolderFits(job, folder);
        yield FolderSamples.evaluation(folder, model.height(), mean(job, 3), std(job, 3));
      }
    };
  }

  private static synchronized TrainingSplit trainingSplit(JobConfig job) {
    final String key =
        job.get(Keys.DATA_FORMAT)
            + " "
            + job.get(Keys.DATA_DIR)
            + " "
            + job.get(Keys.DATA_TRAIN_SAMPLES);
    if (cachedTrain == null || !cachedTrain.key().equals(key)) {
      cachedTrain =
          job.get(Keys.DATA_FORMAT) == DataFormat.FOLDER
              ? new TrainingSplit(key, null, ImageFolder.list(job.get(Keys.DATA_DIR), "train"))
              : new TrainingSplit(key, subset(job, load(job, Mnist.Split.TRAIN)), null);
    }
    if (cachedTrain.images() != null) {
      checkFits(job, cachedTrain.images());
    }
    return cachedTrain;
  }

  private static LabeledImages subset(JobConfig job, LabeledImages images) {
    final int samples = job.get(Keys.DATA_TRAIN_SAMPLES);
    if (samples == 0) {
      return images;
    }
    if (samples > images.count()) {
      throw new ConfigurationException(
          String.format(
              "%s=%d, but %s holds %d training images; ask for at most that many, or 0 for all",
              Keys.DATA_TRAIN_SAMPLES.name(), samples, job.get(Keys.DATA_DIR), images.count()));
    }
    return images.subset(samples);
  }

  private static LabeledImages load(JobConfig job, Mnist.Split split) {
    return switch (job.get(Keys.DATA_FORMAT)) {
      case IDX -> Mnist.load(job.get(Keys.DATA_DIR), split);
      case MNIST_JSON -> MnistJson.load(job.get(Keys.DATA_DIR), split);
      case CIFAR10 -> Cifar10.load(job.get(Keys.DATA_DIR), split);
      case FOLDER, SHAPES ->
          throw new IllegalStateException(job.get(Keys.DATA_FORMAT) + " is not loaded");
    };
  }

  /**
   * Scenes at the model's input size, with boxes for a detector or phrases for a grounding model;
   * the model must be one of those, for square RGB images.
   */
  private static Samples scenes(JobConfig job, long seed, long first, int count) {
    final ModelZoo.Spec model = ModelZoo.spec(job);
    if (model.task() == ModelZoo.Task.CLASSIFICATION
        || model.channels() != 3
        || model.height() != model.width()
        || model.classes() < Shapes.KINDS.size()) {
      throw new ConfigurationException(
          String.format(
              "%s, but %s=shapes makes RGB scenes of %d classes of shapes for a detector or a"
                  + " grounding model; choose shapes-yolo or shapes-grounding (bin/lockstep"
                  + " models)",
              takes(model), Keys.DATA_FORMAT.name(), Shapes.KINDS.size()));
    }
    return model.task() == ModelZoo.Task.DETECTION
        ? new SceneSamples(
            seed, first, count, model.height(), model.grid(), mean(job, 3), std(job, 3))
        : new PhraseSamples(
            seed, first, count, model.height(), model.grid(), mean(job, 3), std(job, 3));
  }

  /** Files hold one label per image: the model must classify. */
  private static void checkClassifier(JobConfig job) {
    final ModelZoo.Spec model = ModelZoo.spec(job);
    if (model.task() != ModelZoo.Task.CLASSIFICATION) {
      throw new ConfigurationException(
          String.format(
              "model %s is a %s model, but %s=%s holds one class per image; train it on %s=shapes"
                  + " or choose a classifier (bin/lockstep models)",
              model.name(),
              Keys.lowerName(model.task()),
              Keys.DATA_FORMAT.name(),
              Keys.lowerName(job.get(Keys.DATA_FORMAT)),
              Keys.DATA_FORMAT.name()));
    }
  }

  private static double[] mean(JobConfig job, int channels) {
    return Samples.perChannel(job.get(Keys.DATA_MEAN), channels, Keys.DATA_MEAN.name());
  }

  private static double[] std(JobConfig job, int channels) {
    return Samples.perChannel(job.get(Keys.DATA_STD), channels, Keys.DATA_STD.name());
  }

  /** Folder images are cropped to the model's size: it must take square RGB images. */
  private static ModelZoo.Spec checkFolderFits(JobConfig job, ImageFolder folder) {
    final ModelZoo.Spec model = ModelZoo.spec(job);
    if (model.channels() != 3
        || model.height() != model.width()
        || model.classes() < folder.classes().size()) {
      throw new ConfigurationException(
          String.format(
              "%s, but %s (%s=folder) holds RGB images of %d classes; choose a model for square"
                  + " RGB images with at least that many classes (bin/lockstep models)",
              takes(model),
              job.get(Keys.DATA_DIR),
              Keys.DATA_FORMAT.name(),
              folder.classes().size()));
    }
    return model;
  }

  private static LabeledImages checkFits(JobConfig job, LabeledImages images) {
    final ModelZoo.Spec model = ModelZoo.spec(job);
    if (model.channels() != images.channels()
        || model.height() != images.height()
        || model.width() != images.width()
        || model.classes() < images.classes()) {
      throw new ConfigurationException(
          String.format(
              "%s, but %s (%s=%s) holds %dx%dx%d images of %d classes; choose a model for this"
                  + " data (bin/lockstep models) or the data for this model",
              takes(model),
              job.get(Keys.DATA_DIR),
              Keys.DATA_FORMAT.name(),
              Keys.lowerName(job.get(Keys.DATA_FORMAT)),
              images.channels(),
              images.height(),
              images.width(),
              images.classes()));
    }
    return images;
  }

  private static String takes(ModelZoo.Spec model) {
    return String.format(
        "model %s takes %dx%dx%d images of %d classes",
        model.name(), model.channels(), model.height(), model.width(), model.classes());
  }
}
