package io.lockstep.models;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;

import io.lockstep.conf.ConfigurationException;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Arrays;
import java.util.zip.ZipEntry;
import java.util.zip.ZipInputStream;
import java.util.zip.ZipOutputStream;
import org.deeplearning4j.util.ModelSerializer;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Saved models damaged in the ways files are: each refused in one line naming the file. */
class ModelFileTest {
  private static final String FIX = "give a run's model.zip";

  @TempDir static Path dir;

  /** A LeNet saved with its updater: three entries, each deflated. */
  private static byte[] whole;

  @BeforeAll
  static void saveAModel() throws IOException {
    final Path file = dir.resolve("whole.zip");
    ModelSerializer.writeModel(Networks.of("lenet"), file.toFile(), true);
    whole = Files.readAllBytes(file);
  }

  /** The one line refusing {@code content}: the name, what is wrong, the fix. */
  private static String refusal(String name, byte[] content) throws IOException {
    return refusal(Files.write(dir.resolve(name), content));
  }

  private static String refusal(Path file) {
    final ConfigurationException e =
        assertThrows(
            ConfigurationException.class, () -> ModelFile.check(file, "model " + file, FIX));
    assertTrue(e.getMessage().startsWith("model " + file + ": "), e.getMessage());
    assertTrue(e.getMessage().endsWith("; " + FIX), e.getMessage());
    assertEquals(1, e.getMessage().lines().count(), e.getMessage());
    return e.getMessage();
  }

  @Test
  void aWholeModelPasses() throws IOException {
    ModelFile.check(Files.write(dir.resolve("copy.zip"), whole), "copy.zip", FIX);
  }

  @Test
  void anEmptyFileOrAFolderIsNamed() throws IOException {
    assertTrue(refusal("empty.zip", new byte[0]).contains(": empty (0 bytes); "));
    final Path folder = Files.createDirectories(dir.resolve("folder.zip"));
    assertTrue(refusal(folder).contains(": a folder where the file should be; "));
    assertTrue(refusal(dir.resolve("none.zip")).contains(": no such file; "));
  }

  @Test
  void aFileCutShortIsTruncatedWhereverItIsCut() throws IOException {
    final String half = refusal("half.zip", Arrays.copyOf(whole, whole.length / 2));
    assertTrue(half.contains(": truncated (no zip end record in its "), half);
    // every entry is whole, only the zip's directory is cut: Deeplearning4j would load it
    final String end = refusal("end.zip", Arrays.copyOf(whole, whole.length - 10));
    assertTrue(end.contains(": truncated ("), end);
  }

  @Test
  void damagedBytesInsideAnEntryAreNamedWithTheEntry() throws IOException {
    final byte[] damaged = whole.clone();
    for (int i = 2000; i < 2100; i++) {
      damaged[i] ^= 0x55;
    }
    final String message = refusal("damaged.zip", damaged);
    assertTrue(message.contains(": damaged (entry "), message);
  }

  @Test
  void anEntryWhoseBytesDoNotMatchItsCrcIsDamaged() throws IOException {
    // a well-formed zip whose coefficients were changed after the CRC was taken: stored entries
    final ByteArrayOutputStream out = new ByteArrayOutputStream();
    try (ZipInputStream in = new ZipInputStream(new ByteArrayInputStream(whole));
        ZipOutputStream rewritten = new ZipOutputStream(out)) {
      for (ZipEntry entry; (entry = in.getNextEntry()) != null; ) {
        final byte[] bytes = in.readAllBytes();
        final ZipEntry copy = new ZipEntry(entry.getName());
        copy.setMethod(ZipEntry.STORED);
        copy.setSize(bytes.length);
        final java.util.zip.CRC32 crc = new java.util.zip.CRC32();
        crc.update(bytes);
        copy.setCrc(crc.getValue());
        rewritten.putNextEntry(copy);
        rewritten.write(bytes);
      }
    }
    final byte[] zip = out.toByteArray();
    // the last byte of the last entry's data, just before the central directory
    final int central = indexOf(zip, new byte[] {'P', 'K', 1, 2});
    zip[central - 1] ^= 1;
    final String message = refusal("crc.zip", zip);
    assertTrue(message.contains(": damaged (entry "), message);
    assertTrue(message.contains("CRC-32"), message);
  }

  @Test
  void otherFilesSayWhatTheyAre() throws IOException {
    final String jpeg =
        refusal("photo.zip", new byte[] {(byte) 0xff, (byte) 0xd8, (byte) 0xff, (byte) 0xe0, 0});
    assertTrue(jpeg.contains(": not a zip file (it starts ff d8 ff e0)"), jpeg);
    final ByteArrayOutputStream out = new ByteArrayOutputStream();
    try (ZipOutputStream zip = new ZipOutputStream(out)) {
      zip.putNextEntry(new ZipEntry("readme.txt"));
      zip.write("not a model".getBytes());
    }
    final String other = refusal("other.zip", out.toByteArray());
    assertTrue(other.contains(": a zip, but not a Deeplearning4j model (no "), other);
  }

  @Test
  void aFileItMayNotReadIsNamed() throws IOException {
    assumeFalse("root".equals(System.getProperty("user.name")), "root reads any file");
    final Path file = Files.write(dir.resolve("locked.zip"), whole);
    Files.setPosixFilePermissions(file, PosixFilePermissions.fromString("---------"));
    assertTrue(refusal(file).contains(": cannot read ("));
  }

  private static int indexOf(byte[] bytes, byte[] pattern) {
    outer:
    for (int i = 0; i <= bytes.length - pattern.length; i++) {
      for (int j = 0; j < pattern.length; j++) {
        if (bytes[i + j] != pattern[j]) {
          continue outer;
        }
      }
      return i;
    }
    throw new AssertionError("pattern not found");
  }
}
