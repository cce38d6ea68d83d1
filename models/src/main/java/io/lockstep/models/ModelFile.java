package io.lockstep.models;

import io.lockstep.conf.ConfigurationException;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Enumeration;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.zip.CRC32;
import java.util.zip.ZipEntry;
import java.util.zip.ZipException;
import java.util.zip.ZipFile;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.util.ModelSerializer;

/**
 * A Deeplearning4j {@code ModelSerializer} zip on disk (a run's {@code model.zip} or {@code
 * checkpoint.zip}, a {@code --pretrained} model), checked whole before Deeplearning4j reads it.
 * Deeplearning4j's own errors on a damaged file are a library's words that do not name it ({@code
 * Unexpected end of ZLIB input stream}, {@code Cannot read from stream}), and it reads a zip whose
 * end was cut off as if it were whole; {@link #check} says in one line which file is wrong and how.
 */
public final class ModelFile {
  /** The entries every saved model has: its configuration and its parameters. */
  private static final List<String> ENTRIES = List.of("configuration.json", "coefficients.bin");

  private ModelFile() {}

  /**
   * Checks that a file is a whole saved model: a regular, readable, non-empty zip with its end
   * record, whose every entry inflates to the bytes its CRC-32 was taken of, with a configuration
   * and parameters.
   *
   * @param file the file
   * @param name how the message names it: its path, or {@code KEY=path}
   * @param fix what to do about a damaged file, the message's end
   * @throws ConfigurationException naming the file when it is missing, a folder, not a regular
   *     file, empty, unreadable, not a zip, truncated, damaged, or a zip without a model
   */
  public static void check(Path file, String name, String fix) {
    final String problem = problem(file);
    if (problem != null) {
      throw new ConfigurationException(name + ": " + problem + "; " + fix);
    }
    try (ZipFile zip = new ZipFile(file.toFile())) {
      final Set<String> names = new HashSet<>();
      final Enumeration<? extends ZipEntry> entries = zip.entries();
      while (entries.hasMoreElements()) {
        final ZipEntry entry = entries.nextElement();
        names.add(entry.getName());
        final String damage = damage(zip, entry);
        if (damage != null) {
          throw new ConfigurationException(
              name + ": damaged (entry " + entry.getName() + ": " + damage + "); " + fix);
        }
      }
      if (!names.containsAll(ENTRIES)) {
        throw new ConfigurationException(
            name
                + ": a zip, but not a Deeplearning4j model (no "
                + String.join(" and ", ENTRIES.stream().filter(e -> !names.contains(e)).toList())
                + "); "
                + fix);
      }
    } catch (ZipException e) {
      throw new ConfigurationException(
          name + ": " + unreadableZip(file, e.getMessage()) + "; " + fix, e);
    } catch (IOException e) {
      throw new ConfigurationException(name + ": cannot read (" + firstLine(e) + "); " + fix, e);
    }
  }

  /**
   * Reads a saved model as a graph, after {@link #check}.
   *
   * @param file the file
   * @param name how a message names it: its path, or {@code KEY=path}
   * @param fix what to do about a damaged file, a message's end
   * @param loadUpdater whether to read the optimizer's state too
   * @return the network
   * @throws ConfigurationException naming the file when it is damaged or Deeplearning4j cannot read
   *     a graph from it
   */
  public static ComputationGraph restoreGraph(
      Path file, String name, String fix, boolean loadUpdater) {
    check(file, name, fix);
    try {
      return ModelSerializer.restoreComputationGraph(file.toFile(), loadUpdater);
    } catch (IOException | RuntimeException e) {
      throw new ConfigurationException(
          name + ": not a readable model (" + firstLine(e) + "); " + fix, e);
    }
  }

  /** What is wrong with the file before it is opened as a zip, or null. */
  private static String problem(Path file) {
    if (Files.isDirectory(file)) {
      return "a folder where the file should be";
    }
    if (!Files.exists(file)) {
      return "no such file";
    }
    if (!Files.isRegularFile(file)) {
      return "not a regular file (a pipe, socket or device)";
    }
    final byte[] start;
    try (InputStream in = Files.newInputStream(file)) {
      start = in.readNBytes(4);
    } catch (AccessDeniedException e) {
      return "cannot read (permission denied)";
    } catch (NoSuchFileException e) {
      return "no such file";
    } catch (IOException e) {
      return "cannot read (" + firstLine(e) + ")";
    }
    if (start.length == 0) {
      return "empty (0 bytes)";
    }
    if (start.length < 4 || start[0] != 'P' || start[1] != 'K') {
      final StringBuilder hex = new StringBuilder();
      for (byte b : start) {
        hex.append(hex.length() == 0 ? "" : " ").append(String.format("%02x", b));
      }
      return "not a zip file (it starts " + hex + ")";
    }
    return null;
  }

  /**
   * Why a file that starts as a zip does not open as one: cut short (the end record, which the zip
   * format puts last, is missing), or damaged.
   */
  private static String unreadableZip(Path file, String message) {
    final String size;
    try {
      size = String.format(Locale.ROOT, "%,d bytes", Files.size(file));
    } catch (IOException e) {
      return "damaged zip (" + message + ")";
    }
    return message != null && message.contains("END header not found")
        ? "truncated (no zip end record in its " + size + ")"
        : "damaged zip (" + message + "; " + size + ")";
  }

  /** What is wrong with one entry's bytes, or null: an inflater's error, or a CRC-32 mismatch. */
  private static String damage(ZipFile zip, ZipEntry entry) throws IOException {
    final CRC32 crc = new CRC32();
    final byte[] buffer = new byte[1 << 16];
    long size = 0;
    try (InputStream in = zip.getInputStream(entry)) {
      for (int n; (n = in.read(buffer)) > 0; ) {
        crc.update(buffer, 0, n);
        size += n;
      }
    } catch (ZipException | java.io.EOFException e) {
      return firstLine(e);
    }
    if (entry.getSize() >= 0 && size != entry.getSize()) {
      return String.format(Locale.ROOT, "%,d bytes, written as %,d", size, entry.getSize());
    }
    if (entry.getCrc() >= 0 && crc.getValue() != entry.getCrc()) {
      return String.format("its CRC-32 is %08x, written as %08x", crc.getValue(), entry.getCrc());
    }
    return null;
  }

  private static String firstLine(Throwable e) {
    final String message = e.getMessage();
    return message == null || message.isBlank()
        ? e.getClass().getSimpleName()
        : message.lines().findFirst().orElse(message);
  }
}
