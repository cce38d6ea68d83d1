package io.lockstep.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.lockstep.data.Cifar10;
import io.lockstep.data.DataException;
import io.lockstep.data.ImageFolder;
import io.lockstep.data.Mnist;
import io.lockstep.data.MnistJson;
import java.awt.image.BufferedImage;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.concurrent.TimeUnit;
import java.util.zip.GZIPOutputStream;
import javax.imageio.ImageIO;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FSDataOutputStream;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.hdfs.MiniDFSCluster;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.api.io.TempDir;

/**
 * Damaged files read from HDFS (a MiniDFSCluster's NameNode and DataNode) are named by the URI the
 * user gave, {@code hdfs://host:port/dir/file}, with what is wrong with them, as local files are.
 */
@Timeout(value = 5, unit = TimeUnit.MINUTES)
class DamagedHdfsDataIT {

  private static void write(FileSystem fs, String path, byte[] content) throws IOException {
    try (FSDataOutputStream out = fs.create(new org.apache.hadoop.fs.Path(path))) {
      out.write(content);
    }
  }

  private static byte[] gzip(byte[] content) throws IOException {
    final ByteArrayOutputStream bytes = new ByteArrayOutputStream();
    try (OutputStream out = new GZIPOutputStream(bytes)) {
      out.write(content);
    }
    return bytes.toByteArray();
  }

  /** The IDX header of 60,000 images of 28x28, then 1,000 bytes of them. */
  private static byte[] truncatedImages() {
    final byte[] file = new byte[16 + 1000];
    file[2] = 0x08;
    file[3] = 3;
    file[6] = (byte) 0xea; // 60,000 = 0xea60
    file[7] = 0x60;
    file[11] = 28;
    file[15] = 28;
    return file;
  }

  private static byte[] truncatedJpeg() throws IOException {
    final BufferedImage image = new BufferedImage(64, 64, BufferedImage.TYPE_INT_RGB);
    for (int y = 0; y < 64; y++) {
      for (int x = 0; x < 64; x++) {
        image.setRGB(x, y, ((x * 7) & 255) << 16 | ((y * 3) & 255) << 8 | ((x ^ y) & 255));
      }
    }
    final ByteArrayOutputStream bytes = new ByteArrayOutputStream();
    ImageIO.write(image, "jpg", bytes);
    final byte[] whole = bytes.toByteArray();
    return Arrays.copyOf(whole, whole.length - 2);
  }

  /** The one line the reader refuses with: the file as the URI names it, then what is wrong. */
  private static String refusal(String file, Executable read) {
    final DataException e = assertThrows(DataException.class, read);
    assertTrue(e.getMessage().startsWith(file + ": "), e.getMessage());
    assertEquals(1, e.getMessage().lines().count(), e.getMessage());
    return e.getMessage();
  }

  @Test
  void damagedFilesOnHdfsAreNamedByTheUriGiven(@TempDir Path tmp) throws Exception {
    final Configuration hadoop = new Configuration();
    hadoop.set(MiniDFSCluster.HDFS_MINIDFS_BASEDIR, tmp.resolve("hdfs").toString());
    final MiniDFSCluster hdfs = new MiniDFSCluster.Builder(hadoop).numDataNodes(1).build();
    try {
      final FileSystem fs = hdfs.getFileSystem();
      final String uri = fs.getUri().toString();
      assertTrue(uri.startsWith("hdfs://"), uri);

      write(fs, "/fashion/train-images-idx3-ubyte.gz", gzip(truncatedImages()));
      final String idx =
          refusal(
              uri + "/fashion/train-images-idx3-ubyte.gz",
              () -> Mnist.load(uri + "/fashion", Mnist.Split.TRAIN));
      assertTrue(
          idx.contains(": truncated: 47,040,016 bytes expected uncompressed, 1,016 read; "), idx);

      write(fs, "/cifar/test_batch.bin", new byte[4000]);
      final String cifar =
          refusal(
              uri + "/cifar/test_batch.bin", () -> Cifar10.load(uri + "/cifar", Mnist.Split.TEST));
      assertTrue(cifar.contains("4,000 bytes, 1 whole 3,073-byte CIFAR-10 record ("), cifar);

      fs.mkdirs(new org.apache.hadoop.fs.Path("/mnist/0.json"));
      assertTrue(
          refusal(uri + "/mnist/0.json", () -> MnistJson.load(uri + "/mnist/", Mnist.Split.TRAIN))
              .contains("a folder where the file should be"));

      write(fs, "/images/train/n01/cut.jpg", truncatedJpeg());
      final ImageFolder folder = ImageFolder.list(uri + "/images", "train");
      assertTrue(
          refusal(uri + "/images/train/n01/cut.jpg", () -> folder.decode(0))
              .contains(": truncated ("));
      write(fs, "/images/train/n01/empty.jpg", new byte[0]);
      assertTrue(
          refusal(
                  uri + "/images/train/n01/empty.jpg",
                  () -> ImageFolder.list(uri + "/images", "train"))
              .contains(": empty (0 bytes)"));
    } finally {
      hdfs.shutdown();
    }
  }
}
