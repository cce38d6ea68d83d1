package io.lockstep.data;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
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
}
