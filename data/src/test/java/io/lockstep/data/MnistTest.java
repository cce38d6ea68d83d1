package io.lockstep.data;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;

import java.io.ByteArrayOutputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
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

  /**
   * The one line a damaged training file gives: it starts with the file's path as the folder was
   * given, then says what is wrong.
   */
  private String refusal(String directory, String file) {
    final DataException e =
        assertThrows(DataException.class, () -> Mnist.load(directory, Mnist.Split.TRAIN));
    final String message = e.getMessage();
    assertTrue(message.startsWith(directory + "/" + file + ": "), message);
    assertEquals(1, message.lines().count(), message);
    return message;
  }

  private String refusal(String file) {
    return refusal(dir.toString(), file);
  }

  private static byte[] gzip(byte[] content) throws IOException {
    final ByteArrayOutputStream bytes = new ByteArrayOutputStream();
    try (OutputStream out = new GZIPOutputStream(bytes)) {
      out.write(content);
    }
    return bytes.toByteArray();
  }

  @Test
  void shouldNameAnEmptyFileAndTheFix() throws IOException {
    write(TRAIN_IMAGES, new byte[0]);
    write(TRAIN_LABELS, labelsFile(1, labels(1)));

    final String message = refusal(TRAIN_IMAGES);

    assertTrue(message.contains("empty (0 bytes)"), message);
    assertTrue(message.contains("dataset-fashion-mnist"), message);
  }

  @Test
  void shouldNameAnEmptyGzipFile() throws IOException {
    write(TRAIN_IMAGES + ".gz", new byte[0]);
    write(TRAIN_LABELS, labelsFile(1, labels(1)));

    assertTrue(refusal(TRAIN_IMAGES + ".gz").contains("empty (0 bytes)"));
  }

  @Test
  void shouldCountTheBytesOfAFileTruncatedInItsData() throws IOException {
    write(TRAIN_IMAGES, Arrays.copyOf(imagesFile(2, pixels(2, 0)), 1000));
    write(TRAIN_LABELS, labelsFile(2, labels(2)));

    final String message = refusal(TRAIN_IMAGES);

    assertTrue(
        message.contains(": truncated: 1,584 bytes expected, 1,000 read; download"), message);
  }

  @Test
  void shouldCountTheBytesOfAFileTruncatedInItsHeader() throws IOException {
    write(TRAIN_IMAGES, Arrays.copyOf(imagesFile(1, pixels(1, 0)), 10));
    write(TRAIN_LABELS, labelsFile(1, labels(1)));

    final String message = refusal(TRAIN_IMAGES);

    assertTrue(
        message.contains("truncated: 10 bytes, shorter than its IDX header (16 bytes)"), message);
  }

  @Test
  void shouldCountTheUncompressedBytesOfATruncatedGzipStream() throws IOException {
    final byte[] compressed = gzip(imagesFile(100, pixels(100, 0)));
    write(TRAIN_IMAGES + ".gz", Arrays.copyOf(compressed, compressed.length / 2));
    write(TRAIN_LABELS, labelsFile(100, labels(100)));

    final String message = refusal(TRAIN_IMAGES + ".gz");

    assertTrue(message.contains("truncated: 78,416 bytes expected uncompressed, "), message);
    assertFalse(message.contains("ZLIB"), message);
  }

  @Test
  void shouldNotAllocateWhatADamagedHeaderDeclares() throws IOException {
    final byte[] header = imagesFile(60_000, new byte[1000]);
    write(TRAIN_IMAGES + ".gz", gzip(header));
    write(TRAIN_LABELS, labelsFile(1, labels(1)));

    final String message = refusal(TRAIN_IMAGES + ".gz");

    assertTrue(
        message.contains("truncated: 47,040,016 bytes expected uncompressed, 1,016 read"), message);
  }

  @Test
  void shouldSayAGzipStreamEndsBeforeItsTrailer() throws IOException {
    final byte[] compressed = gzip(imagesFile(1, pixels(1, 0)));
    write(TRAIN_IMAGES + ".gz", Arrays.copyOf(compressed, compressed.length - 8));
    write(TRAIN_LABELS, labelsFile(1, labels(1)));

    assertTrue(refusal(TRAIN_IMAGES + ".gz").contains("truncated: the gzip stream ends"));
  }

  @Test
  void shouldNameDamagedGzipData() throws IOException {
    final byte[] compressed = gzip(imagesFile(4, pixels(4, 0)));
    for (int i = 10; i < compressed.length; i++) {
      compressed[i] = (byte) (i * 131);
    }
    write(TRAIN_IMAGES + ".gz", compressed);
    write(TRAIN_LABELS, labelsFile(4, labels(4)));

    assertTrue(refusal(TRAIN_IMAGES + ".gz").contains("damaged gzip data after"));
  }

  @Test
  void shouldNameAGzipTrailerThatDoesNotMatch() throws IOException {
    final byte[] compressed = gzip(imagesFile(1, pixels(1, 0)));
    compressed[compressed.length - 6] ^= 1; // the CRC-32 of the data
    write(TRAIN_IMAGES + ".gz", compressed);
    write(TRAIN_LABELS, labelsFile(1, labels(1)));

    assertTrue(refusal(TRAIN_IMAGES + ".gz").contains("damaged gzip data"));
  }

  @Test
  void shouldNameADamagedOrCutGzipHeader() throws IOException {
    write(TRAIN_IMAGES + ".gz", new byte[] {0x1f, (byte) 0x8b, 1, 2, 3, 4, 5, 6, 7, 8, 9});
    write(TRAIN_LABELS + ".gz", new byte[] {0x1f, (byte) 0x8b, 8});

    assertTrue(refusal(TRAIN_IMAGES + ".gz").contains("a damaged gzip header"));
    write(TRAIN_IMAGES, imagesFile(1, pixels(1, 0)));
    Files.delete(dir.resolve(TRAIN_IMAGES + ".gz"));
    assertTrue(refusal(TRAIN_LABELS + ".gz").contains("ends inside its gzip header"));
  }

  @Test
  void shouldNameAFolderWhereTheFileShouldBe() throws IOException {
    Files.createDirectories(dir.resolve(TRAIN_IMAGES + ".gz"));
    write(TRAIN_LABELS, labelsFile(1, labels(1)));

    assertTrue(refusal(TRAIN_IMAGES + ".gz").contains("a folder where the file should be"));
  }

  @Test
  void shouldNameAFileGivenAsTheFolder() throws IOException {
    write(TRAIN_IMAGES, imagesFile(1, pixels(1, 0)));
    final String file = dir.resolve(TRAIN_IMAGES).toString();

    final DataException e =
        assertThrows(DataException.class, () -> Mnist.load(file, Mnist.Split.TRAIN));

    assertTrue(e.getMessage().startsWith(file + ": a file, not a folder; "), e.getMessage());
  }

  @Test
  void shouldSayWhatAFileThatIsNotIdxLooksLike() throws IOException {
    write(TRAIN_IMAGES, new byte[] {(byte) 0xff, (byte) 0xd8, (byte) 0xff, (byte) 0xe0, 0, 16});
    write(TRAIN_LABELS + ".gz", gzip("<!DOCTYPE html>\n<html><body>Not Found".getBytes()));

    assertTrue(refusal(TRAIN_IMAGES).contains("it starts ff d8 ff e0: a JPEG image"));
    write(TRAIN_IMAGES, imagesFile(1, pixels(1, 0)));
    assertTrue(refusal(TRAIN_LABELS + ".gz").contains("an HTML page"));
  }

  @Test
  void shouldNameTheFileOfAUriAsGiven() throws IOException {
    write(TRAIN_IMAGES, Arrays.copyOf(imagesFile(2, pixels(2, 0)), 100));
    write(TRAIN_LABELS, labelsFile(2, labels(2)));

    assertTrue(refusal("file://" + dir, TRAIN_IMAGES).contains("truncated"));
    final DataException slash =
        assertThrows(
            DataException.class, () -> Mnist.load("file://" + dir + "/", Mnist.Split.TRAIN));
    assertTrue(
        slash.getMessage().startsWith("file://" + dir + "/" + TRAIN_IMAGES + ": truncated"),
        slash.getMessage());
  }

  @Test
  void shouldNameAFileItMayNotRead() throws IOException {
    assumeFalse("root".equals(System.getProperty("user.name")), "root reads any file");
    write(TRAIN_IMAGES, imagesFile(1, pixels(1, 0)));
    write(TRAIN_LABELS, labelsFile(1, labels(1)));
    Files.setPosixFilePermissions(
        dir.resolve(TRAIN_IMAGES), PosixFilePermissions.fromString("---------"));

    assertTrue(refusal(TRAIN_IMAGES).contains("cannot read (Permission denied)"));
  }
}
