package io.lockstep.data;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** CIFAR-10's binary version, on files written here in its real layout. */
class Cifar10Test {
  private static final int PLANE = Cifar10.SIZE * Cifar10.SIZE;
  private static final List<String> NAMES =
      List.of(
          "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck");

  @TempDir Path dir;

  /**
   * Record r of a file: label (r * 3 + file) % 10, red = r, green = 100 + file, blue = pixel index.
   */
  private static byte[] batch(int file, int records) {
    final byte[] bytes = new byte[records * Cifar10.RECORD];
    for (int r = 0; r < records; r++) {
      final int at = r * Cifar10.RECORD;
      bytes[at] = (byte) ((r * 3 + file) % 10);
      for (int p = 0; p < PLANE; p++) {
        bytes[at + 1 + p] = (byte) r;
        bytes[at + 1 + PLANE + p] = (byte) (100 + file);
        bytes[at + 1 + 2 * PLANE + p] = (byte) p;
      }
    }
    return bytes;
  }

  @BeforeEach
  void writeTheDataset() throws IOException {
    for (int file = 1; file <= 5; file++) {
      Files.write(dir.resolve("data_batch_" + file + ".bin"), batch(file, 3));
    }
    Files.write(dir.resolve("test_batch.bin"), batch(0, 2));
    Files.writeString(
        dir.resolve("batches.meta.txt"), String.join("\n", NAMES) + "\n\n", StandardCharsets.UTF_8);
  }

  @Test
  void readsEveryTrainingBatchInOrderWithItsPlanes() {
    final LabeledImages train = Cifar10.load(dir.toString(), Mnist.Split.TRAIN);
    assertEquals(15, train.count());
    assertEquals(3, train.channels());
    assertEquals(32, train.height());
    assertEquals(32, train.width());
    assertEquals(10, train.classes());
    final int image = 3 * PLANE;
    for (int file = 1; file <= 5; file++) {
      for (int r = 0; r < 3; r++) {
        final int i = (file - 1) * 3 + r;
        assertEquals((r * 3 + file) % 10, train.labels()[i]);
        assertEquals((byte) r, train.pixels()[i * image], "red plane first");
        assertEquals((byte) (100 + file), train.pixels()[i * image + PLANE], "then green");
        assertEquals((byte) 77, train.pixels()[i * image + 2 * PLANE + 77], "then blue");
      }
    }
    final LabeledImages test = Cifar10.load(dir.toString(), Mnist.Split.TEST);
    assertEquals(2, test.count());
    assertArrayEquals(new byte[] {0, 3}, test.labels());
    assertEquals(NAMES, Cifar10.classNames(dir.toString()));
    assertEquals(15, Cifar10.load("file://" + dir, Mnist.Split.TRAIN).count());
  }

  @Test
  void namesAMissingBatchAndTheFolderToSet() throws IOException {
    Files.delete(dir.resolve("data_batch_4.bin"));
    final DataException e =
        assertThrows(DataException.class, () -> Cifar10.load(dir.toString(), Mnist.Split.TRAIN));
    assertTrue(e.getMessage().contains("data_batch_4.bin does not exist"), e.getMessage());
    assertTrue(e.getMessage().contains("lockstep.data.dir"), e.getMessage());
    Files.delete(dir.resolve("test_batch.bin"));
    assertTrue(
        assertThrows(DataException.class, () -> Cifar10.load(dir.toString(), Mnist.Split.TEST))
            .getMessage()
            .contains("test_batch.bin"));
  }

  /** The one line a damaged file gives: the file's path as the folder was given, then what. */
  private static String refusal(String file, Runnable load) {
    final DataException e = assertThrows(DataException.class, load::run);
    assertTrue(e.getMessage().startsWith(file + ": "), e.getMessage());
    assertEquals(1, e.getMessage().lines().count(), e.getMessage());
    return e.getMessage();
  }

  @Test
  void refusesATruncatedOrEmptyFile() throws IOException {
    final byte[] whole = batch(2, 3);
    Files.write(dir.resolve("data_batch_2.bin"), Arrays.copyOf(whole, whole.length - 100));
    final String truncated =
        refusal(dir + "/data_batch_2.bin", () -> Cifar10.load(dir.toString(), Mnist.Split.TRAIN));
    assertTrue(
        truncated.contains(
            "9,119 bytes, 2 whole 3,073-byte CIFAR-10 records (1 label byte + 3x32x32 pixels)"
                + " and 2,973 bytes over"),
        truncated);
    assertTrue(truncated.contains("truncated"), truncated);
    Files.write(dir.resolve("data_batch_2.bin"), new byte[0]);
    final String empty =
        refusal(dir + "/data_batch_2.bin", () -> Cifar10.load(dir.toString(), Mnist.Split.TRAIN));
    assertTrue(empty.contains("empty (0 bytes)"), empty);
    assertTrue(empty.contains("cifar-10-binary.tar.gz"), empty);
  }

  @Test
  void namesTheFileOfAUriAsGiven() throws IOException {
    Files.write(dir.resolve("test_batch.bin"), new byte[100]);
    final String uri = "file://" + dir;
    assertTrue(
        refusal(uri + "/test_batch.bin", () -> Cifar10.load(uri, Mnist.Split.TEST))
            .contains("100 bytes"));
  }

  @Test
  void refusesAFolderWhereAFileShouldBeAndAFileGivenAsTheFolder() throws IOException {
    Files.delete(dir.resolve("test_batch.bin"));
    Files.createDirectories(dir.resolve("test_batch.bin"));
    assertTrue(
        refusal(dir + "/test_batch.bin", () -> Cifar10.load(dir.toString(), Mnist.Split.TEST))
            .contains("a folder where the file should be"));
    Files.delete(dir.resolve("batches.meta.txt"));
    Files.createDirectories(dir.resolve("batches.meta.txt"));
    assertTrue(
        refusal(dir + "/batches.meta.txt", () -> Cifar10.classNames(dir.toString()))
            .contains("a folder where the file should be"));
    final String archive =
        Files.write(dir.resolve("cifar-10-binary.tar.gz"), new byte[] {0x1f, (byte) 0x8b})
            .toString();
    final String file = refusal(archive, () -> Cifar10.load(archive, Mnist.Split.TRAIN));
    assertTrue(file.contains("a file, not a folder"), file);
  }

  @Test
  void refusesAnEmptyMetaFile() throws IOException {
    Files.write(dir.resolve("batches.meta.txt"), new byte[0]);
    assertTrue(
        refusal(dir + "/batches.meta.txt", () -> Cifar10.classNames(dir.toString()))
            .contains("empty (0 bytes)"));
  }

  @Test
  void refusesALabelOutsideTheTenClasses() throws IOException {
    final byte[] bytes = batch(0, 2);
    bytes[Cifar10.RECORD] = 57; // record 1
    Files.write(dir.resolve("test_batch.bin"), bytes);
    final DataException e =
        assertThrows(DataException.class, () -> Cifar10.load(dir.toString(), Mnist.Split.TEST));
    assertTrue(e.getMessage().contains("record 1 has label 57"), e.getMessage());
  }

  @Test
  void refusesAMetaFileWithoutTenNames() throws IOException {
    Files.writeString(dir.resolve("batches.meta.txt"), "cat\ndog\n");
    assertTrue(
        assertThrows(DataException.class, () -> Cifar10.classNames(dir.toString()))
            .getMessage()
            .contains("names 2 classes"));
  }
}
