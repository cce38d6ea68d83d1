package io.lockstep.data;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import org.junit.jupiter.api.Test;

class ShapesTest {
  private static final int SIZE = 64;

  @Test
  void aSceneIsTheSameForTheSameSeedAndIndex() {
    final Shapes.Scene a = Shapes.scene(3, 17, SIZE);
    final Shapes.Scene b = Shapes.scene(3, 17, SIZE);
    assertArrayEquals(a.pixels(), b.pixels());
    assertEquals(a.boxes(), b.boxes());
    assertFalse(Arrays.equals(a.pixels(), Shapes.scene(3, 18, SIZE).pixels()));
    assertFalse(Arrays.equals(a.pixels(), Shapes.scene(4, 17, SIZE).pixels()));
  }

  @Test
  void scenesHoldOneToThreeShapesOfEveryKindAndColorInsideTheImage() {
    final int[] counts = new int[4];
    final int[] kinds = new int[Shapes.KINDS.size()];
    final int[] colors = new int[Shapes.COLORS.size()];
    for (int i = 0; i < 600; i++) {
      final Shapes.Scene scene = Shapes.scene(1, i, SIZE);
      assertEquals(3 * SIZE * SIZE, scene.pixels().length);
      counts[scene.boxes().size()]++;
      for (Shapes.Box box : scene.boxes()) {
        kinds[box.kind()]++;
        colors[box.color()]++;
        assertTrue(
            box.x1() >= 0 && box.y1() >= 0 && box.x2() <= SIZE && box.y2() <= SIZE, "" + box);
        final int side = box.x2() - box.x1();
        assertTrue(side >= 6 && side <= 29, "side " + side);
        for (Shapes.Box other : scene.boxes()) {
          if (other != box) {
            assertTrue(box.iou(other) <= 0.1, box + " overlaps " + other);
          }
        }
      }
    }
    assertEquals(0, counts[0]);
    for (int c = 1; c <= 3; c++) {
      assertTrue(counts[c] > 120, "scenes with " + c + " shapes: " + counts[c]);
    }
    Arrays.stream(kinds).forEach(k -> assertTrue(k > 250, Arrays.toString(kinds)));
    Arrays.stream(colors).forEach(k -> assertTrue(k > 250, Arrays.toString(colors)));
  }

  @Test
  void shapesAreDrawnInTheirColorAndOnlyThere() {
    final Shapes.Scene scene = Shapes.scene(5, 0, SIZE);
    final int plane = SIZE * SIZE;
    for (Shapes.Box box : scene.boxes()) {
      final int cx = (box.x1() + box.x2()) / 2;
      final int cy = (box.y1() + box.y2()) / 2 + (box.y2() - box.y1()) / 4;
      final int red = scene.pixels()[cy * SIZE + cx] & 0xff;
      final int blue = scene.pixels()[2 * plane + cy * SIZE + cx] & 0xff;
      // the center (a little below, for the triangle) has the shape's color, not the background's
      if (Shapes.COLORS.get(box.color()).equals("red")) {
        assertTrue(red > 200 && blue < 100, box + " red " + red + " blue " + blue);
      } else if (Shapes.COLORS.get(box.color()).equals("blue")) {
        assertTrue(blue > 200 && red < 100, box + " red " + red + " blue " + blue);
      }
    }
    // a triangle leaves its box's top corners as background; a square fills them
    for (int i = 0; i < 50; i++) {
      for (Shapes.Box box : Shapes.scene(6, i, SIZE).boxes()) {
        final int corner = Shapes.scene(6, i, SIZE).pixels()[box.y1() * SIZE + box.x1()] & 0xff;
        final boolean background = corner >= 190;
        final boolean covered =
            Shapes.scene(6, i, SIZE).boxes().stream()
                .anyMatch(
                    o ->
                        o != box
                            && box.x1() >= o.x1()
                            && box.x1() < o.x2()
                            && box.y1() >= o.y1()
                            && box.y1() < o.y2());
        if (!covered && !Shapes.COLORS.get(box.color()).equals("red")) {
          assertEquals(!Shapes.KINDS.get(box.kind()).equals("square"), background, "" + box);
        }
      }
    }
  }

  @Test
  void intersectionOverUnion() {
    final Shapes.Box a = new Shapes.Box(0, 0, 0, 0, 10, 10);
    assertEquals(1.0, a.iou(a));
    assertEquals(0.0, a.iou(new Shapes.Box(0, 0, 10, 0, 20, 10)));
    assertEquals(50.0 / 150.0, a.iou(new Shapes.Box(0, 0, 5, 0, 15, 10)), 1e-12);
  }

  @Test
  void tinyImagesAreRefused() {
    assertThrows(IllegalArgumentException.class, () -> Shapes.scene(0, 0, 8));
  }
}
