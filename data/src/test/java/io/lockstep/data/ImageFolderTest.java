package io.lockstep.data;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.awt.image.BufferedImage;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** An ImageNet-style folder of real JPEG and PNG files written here. */
class ImageFolderTest {
  @TempDir Path root;

  /** A w x h image, one colour. */
  private static void write(Path file, int w, int h, int rgb, String format) throws IOException {
    Files.createDirectories(file.getParent());
    final BufferedImage image = new BufferedImage(w, h, BufferedImage.TYPE_INT_RGB);
    for (int y = 0; y < h; y++) {
      for (int x = 0; x < w; x++) {
        image.setRGB(x, y, rgb);
      }
    }
    assertTrue(ImageIO.write(image, format, file.toFile()), format);
  }

  @BeforeEach
  void writeTheFolder() throws IOException {
    // classes listed out of order on purpose: labels follow the sorted names
    write(root.resolve("train/n02/b.jpg"), 40, 30, 0x0000ff, "jpg");
    write(root.resolve("train/n02/a.JPEG"), 40, 30, 0x0000ff, "jpg");
    write(root.resolve("train/n01/z.png"), 20, 10, 0xff0000, "png");
    Files.writeString(root.resolve("train/n01/notes.txt"), "not an image");
    write(root.resolve("val/n01/v.png"), 8, 8, 0x00ff00, "png");
  }

  @Test
  void listsClassesInSortedOrderAndDecodesRgbPlanes() {
    final ImageFolder train = ImageFolder.list(root.toString(), "train");
    assertEquals(List.of("n01", "n02"), train.classes());
    assertEquals(3, train.count());
    assertArrayEquals(new int[] {0, 1, 1}, train.labels());
    assertTrue(train.paths().get(1).endsWith("n02/a.JPEG"), train.paths().toString());
    final Image red = train.decode(0);
    assertEquals(3, red.channels());
    assertEquals(10, red.height());
    assertEquals(20, red.width());
    assertEquals(255f, red.at(0, 5, 5));
    assertEquals(0f, red.at(1, 5, 5));
    assertEquals(0f, red.at(2, 5, 5));
    final Image blue = train.decode(2);
    assertEquals(30, blue.height());
    assertEquals(40, blue.width());
    assertTrue(blue.at(2, 10, 10) > 240 && blue.at(0, 10, 10) < 15, "JPEG keeps the colour");
    assertEquals(1, ImageFolder.list("file://" + root, "val").count());
  }

  @Test
  void namesWhatIsWrongWithTheFolder() throws IOException {
    final DataException missing =
        assertThrows(DataException.class, () -> ImageFolder.list(root.toString(), "test"));
    assertTrue(missing.getMessage().contains("train/ and val/"), missing.getMessage());
    Files.createDirectories(root.resolve("val/n02"));
    final DataException empty =
        assertThrows(DataException.class, () -> ImageFolder.list(root.toString(), "val"));
    assertTrue(empty.getMessage().contains("n02 has no images"), empty.getMessage());
    Files.createDirectories(root.resolve("flat"));
    Files.writeString(root.resolve("flat/x.jpg"), "");
    final DataException noClasses =
        assertThrows(DataException.class, () -> ImageFolder.list(root + "/flat", "."));
    assertTrue(noClasses.getMessage().contains("no class folders"), noClasses.getMessage());
    Files.writeString(root.resolve("train/n01/broken.jpg"), "garbage, not a JPEG");
    final ImageFolder train = ImageFolder.list(root.toString(), "train");
    final DataException garbage = assertThrows(DataException.class, () -> train.decode(0));
    assertTrue(garbage.getMessage().contains("broken.jpg"), garbage.getMessage());
  }

  /** A 256x256 image of varied colours: its compressed data spans many bytes. */
  private static byte[] busyImage(String format) throws IOException {
    final BufferedImage image = new BufferedImage(256, 256, BufferedImage.TYPE_INT_RGB);
    for (int y = 0; y < 256; y++) {
      for (int x = 0; x < 256; x++) {
        image.setRGB(x, y, ((x * 7) & 255) << 16 | ((y * 3) & 255) << 8 | ((x ^ y) & 255));
      }
    }
    final ByteArrayOutputStream bytes = new ByteArrayOutputStream();
    assertTrue(ImageIO.write(image, format, bytes), format);
    return bytes.toByteArray();
  }

  /** The one line decoding a damaged image gives: the file as the root was given, then what. */
  private static String refusal(ImageFolder folder, int index, String file) {
    final DataException e = assertThrows(DataException.class, () -> folder.decode(index));
    assertTrue(e.getMessage().startsWith(file + ": "), e.getMessage());
    assertEquals(1, e.getMessage().lines().count(), e.getMessage());
    return e.getMessage();
  }

  @Test
  void namesADamagedImageAndWhatIsWrongWithIt() throws IOException {
    final byte[] jpeg = busyImage("jpg");
    final byte[] png = busyImage("png");
    final Path n03 = Files.createDirectories(root.resolve("train/n03"));
    Files.write(n03.resolve("a-half.jpg"), Arrays.copyOf(jpeg, jpeg.length / 2));
    Files.write(n03.resolve("b-no-end.jpg"), Arrays.copyOf(jpeg, jpeg.length - 2));
    Files.write(n03.resolve("c-half.png"), Arrays.copyOf(png, png.length / 2));
    Files.write(n03.resolve("d-html.jpg"), "<html><body>Not Found</body></html>".getBytes());
    Files.write(n03.resolve("e-whole.jpg"), jpeg);
    Files.write(n03.resolve("f-whole.png"), png);
    final ImageFolder train = ImageFolder.list(root.toString(), "train");
    final String n03Name = root + "/train/n03/";
    // n01: z.png; n02: a.JPEG, b.jpg; then n03's six
    assertTrue(refusal(train, 3, n03Name + "a-half.jpg").contains("truncated"));
    assertTrue(refusal(train, 4, n03Name + "b-no-end.jpg").contains("truncated"));
    final String halfPng = refusal(train, 5, n03Name + "c-half.png");
    assertTrue(halfPng.contains("truncated"), halfPng);
    assertTrue(halfPng.contains("copy it again"), halfPng);
    assertTrue(refusal(train, 6, n03Name + "d-html.jpg").contains("not a JPEG or PNG image"));
    assertEquals(256, train.decode(7).width());
    assertEquals(256, train.decode(8).width());
    // replaced by a folder after the listing
    Files.delete(n03.resolve("e-whole.jpg"));
    Files.createDirectories(n03.resolve("e-whole.jpg"));
    assertTrue(
        refusal(train, 7, n03Name + "e-whole.jpg").contains("a folder where the file should be"));
    // through a URI, the file is named as the root was given
    final String uri = "file://" + root;
    final ImageFolder fromUri = ImageFolder.list(uri, "train");
    assertTrue(refusal(fromUri, 3, uri + "/train/n03/a-half.jpg").contains("truncated"));
  }

  @Test
  void theListingRefusesAnEmptyImage() throws IOException {
    Files.write(root.resolve("train/n02/c.jpg"), new byte[0]);
    final DataException e =
        assertThrows(DataException.class, () -> ImageFolder.list(root.toString(), "train"));
    assertEquals(
        root + "/train/n02/c.jpg: empty (0 bytes); copy it again, or remove it", e.getMessage());
  }
}
