package io.lockstep.data;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import org.apache.hadoop.conf.Configuration;

/**
 * Reads CIFAR-10's binary version (the {@code cifar-10-batches-bin} folder) from a folder or a
 * Hadoop URI: {@code data_batch_1.bin} to {@code data_batch_5.bin} for training, {@code
 * test_batch.bin} for testing, each a run of 3,073-byte records (one label byte, then the 32x32
 * red, green and blue planes, row-major), and {@code batches.meta.txt} with one class name per
 * line. The planes are kept as they are: {@link LabeledImages} is channel-major.
 */
public final class Cifar10 {
  /** Classes of CIFAR-10. */
  public static final int CLASSES = 10;

  /** Image side, in pixels. */
  public static final int SIZE = 32;

  /** Colour planes. */
  public static final int CHANNELS = 3;

  /** Bytes of one record: the label and the three planes. */
  public static final int RECORD = 1 + CHANNELS * SIZE * SIZE;

  private static final int TRAIN_BATCHES = 5;
  private static final String WHERE =
      "lockstep.data.dir (--data-dir) to the cifar-10-batches-bin folder of CIFAR-10's binary"
          + " version";
  private static final String FIX = "download cifar-10-binary.tar.gz again and unpack it";

  private Cifar10() {}

  /**
   * The files that hold one split.
   *
   * @param split which split
   * @return the file names, in the order their records are read
   */
  public static List<String> files(Mnist.Split split) {
    if (split == Mnist.Split.TEST) {
      return List.of("test_batch.bin");
    }
    final List<String> names = new ArrayList<>();
    for (int i = 1; i <= TRAIN_BATCHES; i++) {
      names.add("data_batch_" + i + ".bin");
    }
    return names;
  }

  /**
   * Loads one split.
   *
   * @param directory a local folder or a Hadoop URI
   * @param split which split
   * @return the images (3x32x32, channel-major) and labels
   * @throws DataException naming the file when one is missing, a folder, empty, unreadable, not a
   *     whole number of records, or holds a label outside 0-9
   */
  public static LabeledImages load(String directory, Mnist.Split split) {
    final Configuration hadoop = new Configuration();
    DataFile.checkFolder(directory, hadoop, "set " + WHERE + "; unpack cifar-10-binary.tar.gz");
    final ByteArrayOutputStream pixels = new ByteArrayOutputStream();
    final ByteArrayOutputStream labels = new ByteArrayOutputStream();
    for (String name : files(split)) {
      final DataFile file = DataFile.in(directory, name, FIX);
      final byte[] bytes = readAll(file, hadoop, directory);
      if (bytes.length % RECORD != 0) {
        throw file.damaged(
            DataFile.count(bytes.length)
                + " bytes, "
                + DataFile.count(bytes.length / RECORD)
                + " whole "
                + DataFile.count(RECORD)
                + "-byte CIFAR-10 record"
                + (bytes.length / RECORD == 1 ? "" : "s")
                + " (1 label byte + 3x32x32 pixels) and "
                + DataFile.count(bytes.length % RECORD)
                + " bytes over: the file is truncated or not CIFAR-10's binary version",
            null);
      }
      for (int offset = 0; offset < bytes.length; offset += RECORD) {
        final int label = bytes[offset] & 0xff;
        if (label >= CLASSES) {
          throw new DataException(
              file.name()
                  + ": record "
                  + offset / RECORD
                  + " has label "
                  + label
                  + ", expected 0-9; not CIFAR-10's binary version (CIFAR-100's records have two"
                  + " label bytes)");
        }
        labels.write(label);
        pixels.write(bytes, offset + 1, RECORD - 1);
      }
    }
    return new LabeledImages(
        pixels.toByteArray(), labels.toByteArray(), CHANNELS, SIZE, SIZE, CLASSES);
  }

  /**
   * The class names of {@code batches.meta.txt}.
   *
   * @param directory a local folder or a Hadoop URI
   * @return the ten names, in label order
   * @throws DataException when the file is missing or does not name ten classes
   */
  public static List<String> classNames(String directory) {
    final DataFile file = DataFile.in(directory, "batches.meta.txt", FIX);
    final String text =
        new String(readAll(file, new Configuration(), directory), StandardCharsets.UTF_8);
    final List<String> names = new ArrayList<>();
    for (String line : text.split("\\R")) {
      if (!line.isBlank()) {
        names.add(line.strip());
      }
    }
    if (names.size() != CLASSES) {
      throw new DataException(
          file.name() + ": names " + names.size() + " classes, expected one per line for 10");
    }
    return names;
  }

  private static byte[] readAll(DataFile file, Configuration hadoop, String directory) {
    try {
      if (!file.path().getFileSystem(hadoop).exists(file.path())) {
        throw new DataException(
            file.name()
                + " does not exist; set "
                + WHERE
                + " (data_batch_1.bin to data_batch_5.bin, test_batch.bin, batches.meta.txt)");
      }
    } catch (IOException e) {
      throw new DataException(directory + ": cannot list (" + e.getMessage() + ")", e);
    }
    try (InputStream in = file.open(hadoop)) {
      return in.readAllBytes();
    } catch (IOException e) {
      throw file.unreadable(e);
    }
  }
}
