package io.lockstep.worker;

import io.lockstep.conf.ConfigurationException;
import io.lockstep.conf.JobConfig;
import io.lockstep.conf.Keys;
import io.lockstep.data.Cifar10;
import io.lockstep.data.LabeledImages;
import io.lockstep.data.Mnist;
import io.lockstep.models.ModelZoo;

/** A job's images: read in {@code lockstep.data.format}, checked against the model's input. */
public final class Datasets {
  private static LabeledImages cachedTrain;
  private static String cachedTrainKey;

  private Datasets() {}

  /**
   * One split of the job's dataset.
   *
   * @param job the job: its data folder or URI, format and model
   * @param split which split
   * @return the images
   * @throws ConfigurationException when the images are not the model's input shape or classes
   */
  public static LabeledImages load(JobConfig job, Mnist.Split split) {
    final LabeledImages images =
        switch (job.dataFormat()) {
          case IDX -> Mnist.load(job.dataDir(), split);
          case CIFAR10 -> Cifar10.load(job.dataDir(), split);
        };
    checkFits(job, images);
    return images;
  }

  /**
   * The training split, decoded once per JVM, folder and format: an executor runs many stages, and
   * the workers of Spark local mode share one JVM.
   *
   * @param job the job
   * @return the training images
   */
  public static synchronized LabeledImages training(JobConfig job) {
    final String key = job.dataFormat() + " " + job.dataDir();
    if (cachedTrain == null || !cachedTrainKey.equals(key)) {
      cachedTrain = load(job, Mnist.Split.TRAIN);
      cachedTrainKey = key;
    }
    checkFits(job, cachedTrain);
    return cachedTrain;
  }

  private static void checkFits(JobConfig job, LabeledImages images) {
    final ModelZoo.Spec model = ModelZoo.spec(job.modelName());
    if (model.channels() != images.channels()
        || model.height() != images.height()
        || model.width() != images.width()
        || model.classes() < images.classes()) {
      throw new ConfigurationException(
          String.format(
              "model %s takes %dx%dx%d images of %d classes, but %s (%s=%s) holds %dx%dx%d"
                  + " images of %d classes; choose a model for this data (bin/lockstep models)"
                  + " or the data for this model",
              model.name(),
              model.channels(),
              model.height(),
              model.width(),
              model.classes(),
              job.dataDir(),
              Keys.DATA_FORMAT.name(),
              Keys.lowerName(job.dataFormat()),
              images.channels(),
              images.height(),
              images.width(),
              images.classes()));
    }
  }
}
