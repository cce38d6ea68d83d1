package io.lockstep.data;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** Phrases name their target alone, examples are reproducible, tokens encode the phrase. */
class GroundingTest {

  @Test
  void everyPhraseNamesItsTargetAndNoOtherShape() {
    final Set<String> seen = new HashSet<>();
    for (int i = 0; i < 2_000; i++) {
      final Grounding.Example example = Grounding.example(4, i, 64);
      seen.add(example.phrase().replaceAll("^the \\w+ \\w+", "the C K"));
      final String[] words = example.phrase().split(" ");
      final int color = Shapes.COLORS.indexOf(words[1]);
      final int kind = Shapes.KINDS.indexOf(words[2]);
      assertEquals(example.target().color(), color, example.phrase());
      assertEquals(example.target().kind(), kind, example.phrase());
      final List<Shapes.Box> named =
          example.scene().boxes().stream()
              .filter(b -> b.color() == color && b.kind() == kind)
              .toList();
      final Shapes.Box target = example.target();
      for (Shapes.Box other : named) {
        if (other == target) {
          continue;
        }
        final String where = words.length == 3 ? "alone" : words[5];
        switch (where) {
          case "left" -> assertTrue(other.x1() + other.x2() > target.x1() + target.x2());
          case "right" -> assertTrue(other.x1() + other.x2() < target.x1() + target.x2());
          case "top" -> assertTrue(other.y1() + other.y2() > target.y1() + target.y2());
          default -> throw new AssertionError(example.phrase() + " names two shapes");
        }
      }
      final int[] tokens = Grounding.tokens(example.phrase());
      assertArrayEquals(tokens, example.tokens());
      assertEquals(
          words.length,
          tokens.length - (int) java.util.Arrays.stream(tokens).filter(t -> t == 0).count(),
          "padded at the front");
      assertEquals(Grounding.VOCABULARY.indexOf(words[0]), tokens[tokens.length - words.length]);
      assertEquals(example.phrase(), Grounding.example(4, i, 64).phrase(), "reproducible");
    }
    assertTrue(seen.contains("the C K"), seen.toString());
    assertTrue(seen.contains("the C K on the left"), seen.toString());
    assertTrue(seen.contains("the C K on the right"), seen.toString());
  }

  @Test
  void tokensAreVocabularyIndicesAndStrangeWordsAreRefused() {
    assertArrayEquals(new int[] {0, 0, 0, 1, 2, 5}, Grounding.tokens("the red circle"));
    assertArrayEquals(
        new int[] {1, 4, 6, 8, 1, 9}, Grounding.tokens("the blue square on the left"));
    final IllegalArgumentException word =
        assertThrows(IllegalArgumentException.class, () -> Grounding.tokens("the purple circle"));
    assertTrue(word.getMessage().contains("\"purple\""), word.getMessage());
    assertThrows(
        IllegalArgumentException.class,
        () -> Grounding.tokens("the red circle on the left of the square"));
  }
}
