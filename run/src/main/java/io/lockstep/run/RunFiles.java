package io.lockstep.run;

import com.google.gson.FieldNamingPolicy;
import com.google.gson.Gson;
import com.google.gson.GsonBuilder;
import com.google.gson.JsonElement;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.io.Writer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.List;

/** The files of a run directory, each replaced atomically. */
public final class RunFiles {
  /** Gson as the run's JSON files use it: snake_case field names, NaN allowed. */
  public static final Gson JSON =
      new GsonBuilder()
          .setFieldNamingPolicy(FieldNamingPolicy.LOWER_CASE_WITH_UNDERSCORES)
          .serializeSpecialFloatingPointValues()
          .create();

  private RunFiles() {}

  /**
   * Writes through a temporary file beside {@code target}, flushed to the disk, and an atomic
   * rename, itself flushed with the directory, so a reader never sees half a file and a crash (a
   * kill, a power cut) leaves the previous version. Temporary files that an earlier crash left
   * behind are removed first.
   *
   * @param target the file to replace
   * @param writer fills the temporary file
   * @throws IOException when writing or renaming fails
   */
  public static void writeAtomically(Path target, FileWriter writer) throws IOException {
    final Path directory = target.toAbsolutePath().getParent();
    final String prefix = "." + target.getFileName();
    try (DirectoryStream<Path> stale = Files.newDirectoryStream(directory, prefix + "*.tmp")) {
      for (Path leftover : stale) {
        Files.deleteIfExists(leftover);
      }
    }
    final Path tmp = Files.createTempFile(directory, prefix, ".tmp");
    try {
      writer.write(tmp);
      force(tmp, StandardOpenOption.WRITE);
      Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
      force(directory, StandardOpenOption.READ);
    } finally {
      Files.deleteIfExists(tmp);
    }
  }

  /** Flushes a file's (or a directory's entries') data to the disk. */
  private static void force(Path path, StandardOpenOption mode) throws IOException {
    try (FileChannel channel = FileChannel.open(path, mode)) {
      channel.force(true);
    }
  }

  /**
   * Replaces a text file atomically.
   *
   * @param target the file
   * @param text its new contents
   */
  public static void writeText(Path target, String text) {
    replace(target, tmp -> Files.writeString(tmp, text, StandardCharsets.UTF_8));
  }

  /**
   * Replaces a JSON file atomically, the document streamed into it (a large one, such as the
   * timeline, never becomes one String).
   *
   * @param target the file
   * @param json its new contents, written by {@link #JSON} and ended with a line end
   */
  static void writeJson(Path target, JsonElement json) {
    replace(
        target,
        tmp -> {
          try (Writer out = Files.newBufferedWriter(tmp, StandardCharsets.UTF_8)) {
            JSON.toJson(json, out);
            out.write('\n');
          }
        });
  }

  /** {@link #writeAtomically}, its failure unchecked and naming the file. */
  private static void replace(Path target, FileWriter writer) {
    try {
      writeAtomically(target, writer);
    } catch (IOException e) {
      throw new UncheckedIOException(target + ": cannot write (" + e.getMessage() + ")", e);
    }
  }

  /**
   * Replaces a JSON-lines file atomically with {@code lines}, one per line.
   *
   * @param target the file
   * @param lines the lines, without line ends
   */
  public static void writeLines(Path target, List<String> lines) {
    final StringBuilder text = new StringBuilder();
    for (String line : lines) {
      text.append(line).append('\n');
    }
    writeText(target, text.toString());
  }

  /**
   * Appends lines to a JSON-lines file and flushes them to the disk: a run's {@code metrics.jsonl}
   * grows by a stage at a time without being rewritten. A crash mid-write leaves at most a partial
   * last line, which {@link StepMetrics#lines} skips.
   *
   * @param target the file, created if missing
   * @param lines the lines, without line ends
   */
  public static void appendLines(Path target, List<String> lines) {
    final StringBuilder text = new StringBuilder();
    for (String line : lines) {
      text.append(line).append('\n');
    }
    try (FileChannel channel =
        FileChannel.open(
            target,
            StandardOpenOption.CREATE,
            StandardOpenOption.WRITE,
            StandardOpenOption.APPEND)) {
      final java.nio.ByteBuffer bytes =
          java.nio.ByteBuffer.wrap(text.toString().getBytes(StandardCharsets.UTF_8));
      while (bytes.hasRemaining()) {
        channel.write(bytes);
      }
      channel.force(false);
    } catch (IOException e) {
      throw new UncheckedIOException(target + ": cannot append (" + e.getMessage() + ")", e);
    }
  }

  /** Fills a temporary file. */
  @FunctionalInterface
  public interface FileWriter {
    /**
     * @param file the temporary file to fill
     * @throws IOException when writing fails
     */
    void write(Path file) throws IOException;
  }
}
