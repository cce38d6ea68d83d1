package io.lockstep.worker;

import io.lockstep.conf.ConfigurationException;
import io.lockstep.conf.DataFormat;
import io.lockstep.conf.JobConfig;
import io.lockstep.conf.Keys;
import io.lockstep.data.Cifar10;
import io.lockstep.data.ImageFolder;
import io.lockstep.data.LabeledImages;
import io.lockstep.data.Mnist;
import io.lockstep.data.MnistJson;
import io.lockstep.models.ModelZoo;

/** A job's images: read in {@code lockstep.data.format}, checked against the model's input. */
public final class Datasets {
  private static Object cachedTrain;
  private static String cachedTrainKey;

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
    final Object images = trainingImages(job);
    if (images instanceof ImageFolder folder) {
      final ModelZoo.Spec model = checkFolderFits(job, folder);
      return FolderSamples.training(folder, model.height(), mean(job, 3), std(job, 3), job.seed());
    }
    return new Batches((LabeledImages) images, job.dataMean(), job.dataStd());
  }

  /**
   * The split accuracy is measured on: IDX's and CIFAR-10's test files, a folder's {@code val/}.
   *
   * @param job the job
   * @return the samples
   * @throws ConfigurationException when the images do not fit the model
   */
  public static Samples test(JobConfig job) {
    return switch (job.dataFormat()) {
      case IDX, CIFAR10, MNIST_JSON ->
          new Batches(checkFits(job, load(job, Mnist.Split.TEST)), job.dataMean(), job.dataStd());
      case FOLDER -> {
        final ImageFolder folder = ImageFolder.list(job.dataDir(), "val");
        final ModelZoo.Spec model = checkFolderFits(job, folder);
        yield FolderSamples.evaluation(folder, model.height(), mean(job, 3), std(job, 3));
      }
    };
  }

  private static synchronized Object trainingImages(JobConfig job) {
    final String key = job.dataFormat() + " " + job.dataDir() + " " + job.dataTrainSamples();
    if (cachedTrain == null || !cachedTrainKey.equals(key)) {
      cachedTrain =
          job.dataFormat() == DataFormat.FOLDER
              ? ImageFolder.list(job.dataDir(), "train")
              : subset(job, load(job, Mnist.Split.TRAIN));
      cachedTrainKey = key;
    }
    if (cachedTrain instanceof LabeledImages images) {
      checkFits(job, images);
    }
    return cachedTrain;
  }

  private static LabeledImages subset(JobConfig job, LabeledImages images) {
    final int samples = job.dataTrainSamples();
    if (samples == 0) {
      return images;
    }
    if (samples > images.count()) {
      throw new ConfigurationException(
          String.format(
              "%s=%d, but %s holds %d training images; ask for at most that many, or 0 for all",
              Keys.DATA_TRAIN_SAMPLES.name(), samples, job.dataDir(), images.count()));
    }
    return images.subset(samples);
  }

  private static LabeledImages load(JobConfig job, Mnist.Split split) {
    return switch (job.dataFormat()) {
      case IDX -> Mnist.load(job.dataDir(), split);
      case MNIST_JSON -> MnistJson.load(job.dataDir(), split);
      case CIFAR10 -> Cifar10.load(job.dataDir(), split);
      case FOLDER -> throw new IllegalStateException("folders are listed, not loaded");
    };
  }

  private static double[] mean(JobConfig job, int channels) {
    return Samples.perChannel(job.dataMean(), channels, Keys.DATA_MEAN.name());
  }

  private static double[] std(JobConfig job, int channels) {
    return Samples.perChannel(job.dataStd(), channels, Keys.DATA_STD.name());
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
              takes(model), job.dataDir(), Keys.DATA_FORMAT.name(), folder.classes().size()));
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
              job.dataDir(),
              Keys.DATA_FORMAT.name(),
              Keys.lowerName(job.dataFormat()),
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
