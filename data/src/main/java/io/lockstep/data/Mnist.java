package io.lockstep.data;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

/** Reads MNIST and Fashion-MNIST (the same IDX layout) from a folder or Hadoop URI. */
public final class Mnist {
  private static final int CLASSES = 10;
  private static final String WHERE =
      "lockstep.data.dir (--data-dir) to the folder with the IDX files";
  private static final String FIX =
      "download it again or reinstall the Debian package dataset-fashion-mnist";

  /** The two splits of the dataset. */
  public enum Split {
    /** The 60,000 training images. */
    TRAIN("train"),
    /** The 10,000 test images. */
    TEST("t10k");

    private final String prefix;

    Split(String prefix) {
      this.prefix = prefix;
    }
  }

  private Mnist() {}

  /**
   * Loads one split, from {@code <split>-images-idx3-ubyte[.gz]} and {@code
   * <split>-labels-idx1-ubyte[.gz]}.
   *
   * @param directory a local folder or a Hadoop URI
   * @param split which split
   * @return the images and labels
   * @throws DataException when a file is missing, malformed, or images and labels disagree
   */
  public static LabeledImages load(String directory, Split split) {
    final Configuration hadoop = new Configuration();
    DataFile.checkFolder(directory, hadoop, "set " + WHERE);
    final DataFile imagesFile = find(directory, split.prefix + "-images-idx3-ubyte", hadoop);
    final IdxFile images = IdxFile.read(imagesFile, hadoop);
    final DataFile labelsFile = find(directory, split.prefix + "-labels-idx1-ubyte", hadoop);
    final IdxFile labels = IdxFile.read(labelsFile, hadoop);
    if (images.dimensions().length != 3) {
      throw new DataException(
          imagesFile.name()
              + ": "
              + split.prefix
              + " images have "
              + images.dimensions().length
              + " dimensions, expected 3 (count, rows, columns)");
    }
    if (labels.dimensions().length != 1 || labels.dimensions()[0] != images.dimensions()[0]) {
      throw new DataException(
          labelsFile.name()
              + ": "
              + images.dimensions()[0]
              + " "
              + split.prefix
              + " images but "
              + labels.dimensions()[0]
              + " labels; the files do not belong together");
    }
    final byte[] y = labels.data();
    for (int i = 0; i < y.length; i++) {
      if ((y[i] & 0xff) >= CLASSES) {
        throw new DataException(
            labelsFile.name()
                + ": "
                + split.prefix
                + " label "
                + i
                + " is "
                + (y[i] & 0xff)
                + ", expected 0-9");
      }
    }
    return new LabeledImages(
        images.data(), y, 1, images.dimensions()[1], images.dimensions()[2], CLASSES);
  }

  private static DataFile find(String directory, String stem, Configuration hadoop) {
    final Path dir = new Path(directory);
    try {
      final FileSystem fs = dir.getFileSystem(hadoop);
      for (String name : new String[] {stem + ".gz", stem}) {
        if (fs.exists(new Path(dir, name))) {
          return DataFile.in(directory, name, FIX);
        }
      }
    } catch (java.io.IOException e) {
      throw new DataException(directory + ": cannot list (" + e.getMessage() + ")", e);
    }
    throw new DataException(
        directory
            + ": neither "
            + stem
            + ".gz nor "
            + stem
            + " exists; set "
            + WHERE
            + ", or install the Debian package dataset-fashion-mnist");
  }
}
