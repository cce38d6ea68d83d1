package io.lockstep.data;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.zip.GZIPOutputStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class MnistTest {
  private static final int SIDE = 28;
  private static final int IMAGE = SIDE * SIDE;
  private static final String TRAIN_IMAGES = "train-images-idx3-ubyte";
  private static final String TRAIN_LABELS = "train-labels-idx1-ubyte";
  private static final String TEST_IMAGES = "t10k-images-idx3-ubyte";
  private static final String TEST_LABELS = "t10k-labels-idx1-ubyte";

  @TempDir Path dir;

  /** Distinct, deterministic pixels covering the whole unsigned range. */
  private static byte[] pixels(int count, int salt) {
    final byte[] p = new byte[count * IMAGE];
    for (int i = 0; i < p.length; i++) {
      p[i] = (byte) (i * 31 + salt);
    }
    return p;
  }

  private static byte[] labels(int count) {
    final byte[] y = new byte[count];
    for (int i = 0; i < count; i++) {
      y[i] = (byte) ((i * 7 + 3) % 10);
    }
    return y;
  }

  private static byte[] imagesFile(int count, byte[] data) throws IOException {
    final ByteArrayOutputStream bytes = new ByteArrayOutputStream();
    final DataOutputStream out = new DataOutputStream(bytes);
    out.write(new byte[] {0, 0, 0x08, 0x03});
    out.writeInt(count);
    out.writeInt(SIDE);
    out.writeInt(SIDE);
    out.write(data);
    out.flush();
    return bytes.toByteArray();
  }

  private static byte[] labelsFile(int count, byte[] data) throws IOException {
    final ByteArrayOutputStream bytes = new ByteArrayOutputStream();
    final DataOutputStream out = new DataOutputStream(bytes);
    out.write(new byte[] {0, 0, 0x08, 0x01});
    out.writeInt(count);
    out.write(data);
    out.flush();
    return bytes.toByteArray();
  }

  private void write(String name, byte[] content) throws IOException {
    Files.write(dir.resolve(name), content);
  }

  private void writeGzip(String name, byte[] content) throws IOException {
    try (OutputStream out =
        new GZIPOutputStream(Files.newOutputStream(dir.resolve(name + ".gz")))) {
      out.write(content);
    }
  }

  private DataException rejected(String expectedFile) {
    final DataException e =
        assertThrows(DataException.class, () -> Mnist.load(dir.toString(), Mnist.Split.TRAIN));
    assertTrue(
        e.getMessage().contains(expectedFile),
        () -> "'" + e.getMessage() + "' should name " + expectedFile);
    return e;
  }

  @Test
  void shouldLoadRawTrainSplit() throws IOException {
    final byte[] x = pixels(3, 0);
    final byte[] y = labels(3);
    write(TRAIN_IMAGES, imagesFile(3, x));
    write(TRAIN_LABELS, labelsFile(3, y));

    final LabeledImages images = Mnist.load(dir.toString(), Mnist.Split.TRAIN);

    assertEquals(3, images.count());
    assertEquals(1, images.channels());
    assertEquals(SIDE, images.height());
    assertEquals(SIDE, images.width());
    assertEquals(IMAGE, images.imageBytes());
    assertEquals(10, images.classes());
    assertArrayEquals(x, images.pixels());
    assertArrayEquals(y, images.labels());
  }

  @Test
  void shouldLoadGzipTrainSplit() throws IOException {
    final byte[] x = pixels(4, 5);
    final byte[] y = labels(4);
    writeGzip(TRAIN_IMAGES, imagesFile(4, x));
    writeGzip(TRAIN_LABELS, labelsFile(4, y));

    final LabeledImages images = Mnist.load(dir.toString(), Mnist.Split.TRAIN);

    assertEquals(4, images.count());
    assertArrayEquals(x, images.pixels());
    assertArrayEquals(y, images.labels());
  }

  @Test
  void shouldLoadTestSplitFromT10kFilesOnly() throws IOException {
    write(TRAIN_IMAGES, imagesFile(3, pixels(3, 0)));
    write(TRAIN_LABELS, labelsFile(3, labels(3)));
    final byte[] x = pixels(2, 9);
    final byte[] y = {9, 0};
    writeGzip(TEST_IMAGES, imagesFile(2, x));
    write(TEST_LABELS, labelsFile(2, y));

    final LabeledImages images = Mnist.load(dir.toString(), Mnist.Split.TEST);

    assertEquals(2, images.count());
    assertArrayEquals(x, images.pixels());
    assertArrayEquals(y, images.labels());
  }

  @Test
  void shouldPreferGzipWhenBothFormsExist() throws IOException {
    final byte[] y = labels(2);
    write(TRAIN_IMAGES, imagesFile(2, pixels(2, 1)));
    writeGzip(TRAIN_IMAGES, imagesFile(2, pixels(2, 2)));
    write(TRAIN_LABELS, labelsFile(2, y));

    assertArrayEquals(pixels(2, 2), Mnist.load(dir.toString(), Mnist.Split.TRAIN).pixels());
  }

  @Test
  void shouldLoadFromFileUri() throws IOException {
    final byte[] x = pixels(2, 3);
    final byte[] y = labels(2);
    write(TRAIN_IMAGES, imagesFile(2, x));
    writeGzip(TRAIN_LABELS, labelsFile(2, y));
    final String uri = dir.toUri().toString();
    assertTrue(uri.startsWith("file:/"), uri);

    final LabeledImages images = Mnist.load(uri, Mnist.Split.TRAIN);

    assertArrayEquals(x, images.pixels());
    assertArrayEquals(y, images.labels());
  }

  @Test
  void shouldExplainMissingImagesFile() {
    final DataException e = rejected(TRAIN_IMAGES);

    assertTrue(e.getMessage().contains("lockstep.data.dir"), e.getMessage());
    assertTrue(e.getMessage().contains("dataset-fashion-mnist"), e.getMessage());
  }

  @Test
  void shouldExplainMissingLabelsFile() throws IOException {
    write(TRAIN_IMAGES, imagesFile(1, pixels(1, 0)));

    final DataException e = rejected(TRAIN_LABELS);

    assertTrue(e.getMessage().contains("lockstep.data.dir"), e.getMessage());
    assertTrue(e.getMessage().contains("dataset-fashion-mnist"), e.getMessage());
  }

  @Test
  void shouldRejectBadMagic() throws IOException {
    final byte[] file = imagesFile(1, pixels(1, 0));
    file[1] = 0x01;
    write(TRAIN_IMAGES, file);
    write(TRAIN_LABELS, labelsFile(1, labels(1)));

    rejected(TRAIN_IMAGES);
  }

  @Test
  void shouldRejectTypeOtherThanUnsignedByte() throws IOException {
    write(TRAIN_IMAGES, imagesFile(1, pixels(1, 0)));
    final byte[] file = labelsFile(1, labels(1));
    file[2] = 0x0D; // float
    write(TRAIN_LABELS, file);

    rejected(TRAIN_LABELS);
  }

  @Test
  void shouldRejectLabelsFileInPlaceOfImages() throws IOException {
    write(TRAIN_IMAGES, labelsFile(1, labels(1)));
    write(TRAIN_LABELS, labelsFile(1, labels(1)));

    rejected(TRAIN_IMAGES);
  }

  @Test
  void shouldRejectTruncatedData() throws IOException {
    final byte[] file = imagesFile(2, pixels(2, 0));
    write(TRAIN_IMAGES, Arrays.copyOf(file, file.length - 1));
    write(TRAIN_LABELS, labelsFile(2, labels(2)));

    final DataException e = rejected(TRAIN_IMAGES);

    assertTrue(e.getMessage().contains("truncated"), e.getMessage());
  }

  @Test
  void shouldRejectTruncatedGzipData() throws IOException {
    final byte[] file = imagesFile(2, pixels(2, 0));
    writeGzip(TRAIN_IMAGES, Arrays.copyOf(file, file.length - 10));
    write(TRAIN_LABELS, labelsFile(2, labels(2)));

    final DataException e = rejected(TRAIN_IMAGES);

    assertTrue(e.getMessage().contains("truncated"), e.getMessage());
  }

  @Test
  void shouldRejectTruncatedGzipStream() throws IOException {
    writeGzip(TRAIN_IMAGES, imagesFile(2, pixels(2, 0)));
    final Path gz = dir.resolve(TRAIN_IMAGES + ".gz");
    final byte[] compressed = Files.readAllBytes(gz);
    Files.write(gz, Arrays.copyOf(compressed, compressed.length / 2));
    write(TRAIN_LABELS, labelsFile(2, labels(2)));

    final DataException e = rejected(TRAIN_IMAGES);

    assertTrue(e.getMessage().contains("truncated"), e.getMessage());
  }

  @Test
  void shouldRejectTruncatedHeader() throws IOException {
    write(TRAIN_IMAGES, imagesFile(1, pixels(1, 0)));
    write(TRAIN_LABELS, new byte[] {0, 0, 0x08});

    rejected(TRAIN_LABELS);
  }

  @Test
  void shouldRejectExtraTrailingBytes() throws IOException {
    write(TRAIN_IMAGES, imagesFile(1, pixels(1, 0)));
    final byte[] file = labelsFile(1, labels(1));
    write(TRAIN_LABELS, Arrays.copyOf(file, file.length + 1));

    final DataException e = rejected(TRAIN_LABELS);

    assertTrue(e.getMessage().contains("more data than its header declares"), e.getMessage());
  }

  @Test
  void shouldRejectExtraTrailingBytesInGzip() throws IOException {
    final byte[] file = imagesFile(1, pixels(1, 0));
    writeGzip(TRAIN_IMAGES, Arrays.copyOf(file, file.length + 5));
    write(TRAIN_LABELS, labelsFile(1, labels(1)));

    rejected(TRAIN_IMAGES);
  }

  @Test
  void shouldRejectLabelCountDifferentFromImageCount() throws IOException {
    write(TRAIN_IMAGES, imagesFile(3, pixels(3, 0)));
    write(TRAIN_LABELS, labelsFile(2, labels(2)));

    final DataException e = rejected(TRAIN_LABELS);

    assertTrue(e.getMessage().contains("3"), e.getMessage());
    assertTrue(e.getMessage().contains("2"), e.getMessage());
  }

  @Test
  void shouldRejectLabelOfTenOrMore() throws IOException {
    write(TRAIN_IMAGES, imagesFile(3, pixels(3, 0)));
    write(TRAIN_LABELS, labelsFile(3, new byte[] {0, 10, 1}));

    final DataException e = rejected(TRAIN_LABELS);

    assertTrue(e.getMessage().contains("label 1 is 10"), e.getMessage());
  }

  @Test
  void shouldRejectLabelAboveSignedByteRange() throws IOException {
    write(TRAIN_IMAGES, imagesFile(1, pixels(1, 0)));
    write(TRAIN_LABELS, labelsFile(1, new byte[] {(byte) 200}));

    final DataException e = rejected(TRAIN_LABELS);

    assertTrue(e.getMessage().contains("200"), e.getMessage());
  }
}
