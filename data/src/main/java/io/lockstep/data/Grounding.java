package io.lockstep.data;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * Referring expressions for {@link Shapes} scenes: each scene gets one of its shapes as the target
 * and a phrase that names it alone, "the red circle" when no other shape has its color and kind,
 * else "the red circle on the left" (or "on the right") when it is the leftmost (rightmost) of
 * those, or "on the top" when twins share a column. Which shape is chosen comes from the scene's
 * seed and number, so an example is the same everywhere.
 */
public final class Grounding {
  /** The words, in token order; token 0 pads a phrase at the front. */
  public static final List<String> VOCABULARY =
      List.of(
          "<pad>",
          "the",
          "red",
          "green",
          "blue",
          "circle",
          "square",
          "triangle",
          "on",
          "left",
          "right",
          "top");

  /** Tokens per phrase, padding included: "the blue square on the left" has 6. */
  public static final int PHRASE_TOKENS = 6;

  private Grounding() {}

  /**
   * One example.
   *
   * @param scene the image and all its shapes
   * @param target the shape the phrase names
   * @param phrase the phrase, words separated by spaces
   * @param tokens {@link #PHRASE_TOKENS} token ids, padded at the front
   */
  public record Example(Shapes.Scene scene, Shapes.Box target, String phrase, int[] tokens) {}

  /**
   * Draws example {@code index} of {@code seed}: the scene {@link Shapes#scene} draws, a target and
   * its phrase.
   *
   * @param seed the set's seed
   * @param index the example's number
   * @param size the image side in pixels
   * @return the example
   */
  public static Example example(long seed, long index, int size) {
    final Shapes.Scene scene = Shapes.scene(seed, index, size);
    final List<Shapes.Box> boxes = scene.boxes();
    final SplittableRandom random = new SplittableRandom(~seed * 0x9E3779B97F4A7C15L + index);
    // targets a phrase can name alone: unique in color and kind, or leftmost/rightmost of its twins
    final List<Shapes.Box> targets = new ArrayList<>();
    final List<String> phrases = new ArrayList<>();
    for (Shapes.Box box : boxes) {
      final List<Shapes.Box> twins =
          boxes.stream().filter(b -> b.kind() == box.kind() && b.color() == box.color()).toList();
      final String name =
          "the " + Shapes.COLORS.get(box.color()) + " " + Shapes.KINDS.get(box.kind());
      if (twins.size() == 1) {
        targets.add(box);
        phrases.add(name);
      } else if (twins.stream().allMatch(b -> b == box || centre(b) > centre(box))) {
        targets.add(box);
        phrases.add(name + " on the left");
      } else if (twins.stream().allMatch(b -> b == box || centre(b) < centre(box))) {
        targets.add(box);
        phrases.add(name + " on the right");
      } else if (twins.stream().allMatch(b -> b == box || b.y1() + b.y2() > box.y1() + box.y2())) {
        targets.add(box);
        phrases.add(name + " on the top");
      }
    }
    final int chosen = random.nextInt(targets.size());
    final String phrase = phrases.get(chosen);
    return new Example(scene, targets.get(chosen), phrase, tokens(phrase));
  }

  /**
   * A phrase's tokens, padded at the front to {@link #PHRASE_TOKENS}.
   *
   * @param phrase words of {@link #VOCABULARY}, separated by spaces
   * @return the token ids
   * @throws IllegalArgumentException naming the word outside the vocabulary or the phrase's length
   */
  public static int[] tokens(String phrase) {
    final String[] words = phrase.trim().split("\\s+");
    if (words.length > PHRASE_TOKENS) {
      throw new IllegalArgumentException(
          "\"" + phrase + "\" has " + words.length + " words; at most " + PHRASE_TOKENS);
    }
    final int[] tokens = new int[PHRASE_TOKENS];
    for (int w = 0; w < words.length; w++) {
      final int token = VOCABULARY.indexOf(words[w]);
      if (token <= 0) {
        throw new IllegalArgumentException(
            "\""
                + words[w]
                + "\" is not a word of the phrases; use "
                + VOCABULARY.subList(1, VOCABULARY.size()));
      }
      tokens[PHRASE_TOKENS - words.length + w] = token;
    }
    return tokens;
  }

  private static int centre(Shapes.Box box) {
    return box.x1() + box.x2();
  }
}
