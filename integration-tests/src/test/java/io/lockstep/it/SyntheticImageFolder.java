package io.lockstep.it;

import java.awt.Color;
import java.awt.Graphics2D;
import java.awt.RenderingHints;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.SplittableRandom;
import javax.imageio.ImageIO;

/**
 * Writes an ImageNet-style folder of real JPEG files: {@code train/<class>/*.jpg} and {@code
 * val/<class>/*.jpg}, images of varied, non-square sizes, each one large shape (the class: a red
 * circle, a green square or a blue triangle, colors jittered) on a noisy grey background.
 */
final class SyntheticImageFolder {
  static final List<String> CLASSES = List.of("circle", "square", "triangle");

  private SyntheticImageFolder() {}

  /**
   * Writes the folder.
   *
   * @param root the dataset's folder
   * @param trainPerClass training images per class
   * @param valPerClass validation images per class
   * @param seed what draws the images
   */
  static void write(Path root, int trainPerClass, int valPerClass, long seed) throws IOException {
    System.setProperty("java.awt.headless", "true");
    final SplittableRandom random = new SplittableRandom(seed);
    for (String split : List.of("train", "val")) {
      final int perClass = split.equals("train") ? trainPerClass : valPerClass;
      for (int label = 0; label < CLASSES.size(); label++) {
        final Path dir = Files.createDirectories(root.resolve(split).resolve(CLASSES.get(label)));
        for (int i = 0; i < perClass; i++) {
          final BufferedImage image = draw(label, random);
          if (!ImageIO.write(
              image, "jpg", dir.resolve(String.format("img_%04d.jpg", i)).toFile())) {
            throw new IOException("no JPEG writer");
          }
        }
      }
    }
  }

  private static BufferedImage draw(int label, SplittableRandom random) {
    final int width = 48 + random.nextInt(40);
    final int height = 40 + random.nextInt(40);
    final BufferedImage image = new BufferedImage(width, height, BufferedImage.TYPE_INT_RGB);
    for (int y = 0; y < height; y++) {
      for (int x = 0; x < width; x++) {
        final int grey = 100 + random.nextInt(56);
        image.setRGB(x, y, grey << 16 | grey << 8 | grey);
      }
    }
    final Graphics2D g = image.createGraphics();
    g.setRenderingHint(RenderingHints.KEY_ANTIALIASING, RenderingHints.VALUE_ANTIALIAS_ON);
    final int strong = 190 + random.nextInt(60);
    final int weak = random.nextInt(60);
    g.setColor(
        switch (label) {
          case 0 -> new Color(strong, weak, weak);
          case 1 -> new Color(weak, strong, weak);
          default -> new Color(weak, weak, strong);
        });
    final int side = (int) (Math.min(width, height) * (0.55 + 0.3 * random.nextDouble()));
    final int left = random.nextInt(width - side + 1);
    final int top = random.nextInt(height - side + 1);
    switch (label) {
      case 0 -> g.fillOval(left, top, side, side);
      case 1 -> g.fillRect(left, top, side, side);
      default ->
          g.fillPolygon(
              new int[] {left, left + side / 2, left + side},
              new int[] {top + side, top, top + side},
              3);
    }
    g.dispose();
    return image;
  }
}
