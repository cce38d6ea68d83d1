package io.lockstep.run;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.lockstep.conf.ConfigurationException;
import io.lockstep.conf.JobConfig;
import io.lockstep.conf.Keys;
import io.lockstep.models.ModelZoo;
import io.lockstep.worker.Replica;
import java.io.BufferedReader;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import java.util.zip.ZipEntry;
import java.util.zip.ZipInputStream;
import java.util.zip.ZipOutputStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Checkpoints survive what happens to files: a process killed in the middle of writing one (for
 * real, {@code kill -9}), damaged bytes, truncation, garbage. Each is refused with one line naming
 * the file, or the previous checkpoint is whole.
 */
class CheckpointTest {

  /** A LeNet replica: small, with Adam's state, so the checksum covers an optimizer too. */
  static Replica replica() {
    final JobConfig job =
        JobConfig.load()
            .with(Map.of("lockstep.model.name", "lenet", "lockstep.optimizer.name", "adam"));
    return Replica.create(ModelZoo.configuration(job, 1), job.get(Keys.WORKER_ENGINE));
  }

  static Checkpoint.Progress progress(int step) {
    return new Checkpoint.Progress(
        "lenet",
        "ADAM",
        7,
        64,
        100,
        200,
        2,
        0,
        step,
        step,
        0,
        0,
        0,
        0,
        0,
        0,
        new long[4],
        List.of(),
        Double.NaN,
        0);
  }

  @Test
  void roundTripsTheStateAndPosition(@TempDir Path dir) throws IOException {
    final Path file = dir.resolve(RunDirectory.CHECKPOINT_FILE);
    try (Replica replica = replica()) {
      replica.network().params().addi(0.25);
      Checkpoint.write(file, replica, progress(42));
      final Checkpoint read = Checkpoint.read(file);
      assertEquals(42, read.progress().step());
      assertArrayEquals(replica.network().params().toFloatVector(), read.parameters());
    }
    try (Stream<Path> files = Files.list(dir)) {
      assertEquals(List.of(file), files.toList(), "no temporary file left");
    }
  }

  @Test
  void refusesDamagedTruncatedAndForeignFiles(@TempDir Path dir) throws IOException {
    final Path file = dir.resolve(RunDirectory.CHECKPOINT_FILE);
    try (Replica replica = replica()) {
      Checkpoint.write(file, replica, progress(1));
    }
    final byte[] whole = Files.readAllBytes(file);

    // one parameter's bits flipped inside a well-formed zip: only the checksum can tell
    final Path flipped = dir.resolve("flipped.zip");
    Files.write(flipped, flipOneParameter(whole));
    final String damaged = refused(flipped);
    assertTrue(damaged.contains("damaged"), damaged);

    final Path truncated = dir.resolve("truncated.zip");
    Files.write(truncated, java.util.Arrays.copyOf(whole, whole.length / 2));
    assertTrue(refused(truncated).contains(": truncated ("));

    // only the zip's directory cut off: every entry whole, still a file that was not copied whole
    final Path cutEnd = dir.resolve("cut-end.zip");
    Files.write(cutEnd, java.util.Arrays.copyOf(whole, whole.length - 10));
    assertTrue(refused(cutEnd).contains(": truncated ("));

    final Path garbage = dir.resolve("garbage.zip");
    Files.writeString(garbage, "not a checkpoint at all");
    assertTrue(refused(garbage).contains(": not a zip file (it starts 6e 6f 74 20)"));

    final Path empty = Files.createFile(dir.resolve("empty.zip"));
    assertTrue(refused(empty).contains(": empty (0 bytes); resume from a copy"));

    final Path folder = Files.createDirectories(dir.resolve("folder.zip"));
    assertTrue(refused(folder).contains(": a folder where the file should be"));

    // a Deeplearning4j model zip without the run's progress
    final Path model = dir.resolve("model.zip");
    try (Replica replica = replica()) {
      org.deeplearning4j.util.ModelSerializer.writeModel(replica.network(), model.toFile(), true);
    }
    refused(model);
  }

  /** Names the file, in one line. */
  private static String refused(Path file) {
    final ConfigurationException e =
        assertThrows(ConfigurationException.class, () -> Checkpoint.read(file));
    assertTrue(e.getMessage().startsWith(file.toString()), e.getMessage());
    assertEquals(1, e.getMessage().lines().count(), e.getMessage());
    return e.getMessage();
  }

  /** The zip, rewritten with the last parameter's lowest mantissa bit flipped. */
  private static byte[] flipOneParameter(byte[] zip) throws IOException {
    final ByteArrayOutputStream out = new ByteArrayOutputStream();
    boolean flipped = false;
    try (ZipInputStream in = new ZipInputStream(new java.io.ByteArrayInputStream(zip));
        ZipOutputStream rewritten = new ZipOutputStream(out)) {
      for (ZipEntry entry; (entry = in.getNextEntry()) != null; ) {
        final byte[] bytes = in.readAllBytes();
        if (entry.getName().equals("coefficients.bin")) {
          // Nd4j.write: the data buffer last, floats big-endian; the last byte is a mantissa's
          bytes[bytes.length - 1] ^= 1;
          flipped = true;
        }
        rewritten.putNextEntry(new ZipEntry(entry.getName()));
        rewritten.write(bytes);
        rewritten.closeEntry();
      }
    }
    assertTrue(flipped, "no coefficients.bin entry");
    return out.toByteArray();
  }

  /**
   * A process writing checkpoints in a loop, killed with SIGKILL while a temporary checkpoint
   * exists beside the real one: the real one reads back whole, and the next write clears the
   * leftover.
   */
  @Test
  @Timeout(value = 3, unit = TimeUnit.MINUTES)
  void aKillDuringAWriteLeavesThePreviousCheckpoint(@TempDir Path dir) throws Exception {
    final Path file = dir.resolve(RunDirectory.CHECKPOINT_FILE);
    int killedMidWrite = 0;
    for (int round = 0; round < 3; round++) {
      final Process writer = startWriter(dir);
      try (BufferedReader out =
          new BufferedReader(
              new InputStreamReader(writer.getInputStream(), StandardCharsets.UTF_8))) {
        // let it finish a few checkpoints, so the kill replaces one
        for (int wrote = 0; wrote < 3; ) {
          final String line = out.readLine();
          if (line == null) {
            fail("the checkpoint writer stopped: exit " + writer.waitFor());
          }
          if (line.startsWith("wrote")) {
            wrote++;
          }
        }
        while (temporaryFiles(dir).isEmpty() && writer.isAlive()) {
          Thread.onSpinWait();
        }
      } finally {
        writer.destroyForcibly();
        assertTrue(writer.waitFor(30, TimeUnit.SECONDS), "the writer outlived SIGKILL");
      }
      if (!temporaryFiles(dir).isEmpty()) {
        killedMidWrite++;
      }
      final Checkpoint read = Checkpoint.read(file);
      assertTrue(read.progress().step() >= 2, "step " + read.progress().step());
    }
    System.out.printf("checkpoint writer: 3 kills, %d during a write%n", killedMidWrite);
    assertTrue(killedMidWrite >= 1, "no kill landed during a write");
    try (Replica replica = replica()) {
      Checkpoint.write(file, replica, progress(0));
    }
    assertEquals(List.of(), temporaryFiles(dir), "the next write clears leftovers");
  }

  private static List<Path> temporaryFiles(Path dir) throws IOException {
    final List<Path> found = new ArrayList<>();
    try (Stream<Path> files = Files.list(dir)) {
      files.filter(f -> f.getFileName().toString().endsWith(".tmp")).forEach(found::add);
    }
    return found;
  }

  private static Process startWriter(Path dir) throws IOException {
    final List<String> command = new ArrayList<>();
    command.add(ProcessHandle.current().info().command().orElse("java"));
    final String cache = System.getProperty("org.bytedeco.javacpp.cachedir");
    if (cache != null) {
      command.add("-Dorg.bytedeco.javacpp.cachedir=" + cache);
    }
    command.add("-cp");
    command.add(System.getProperty("java.class.path"));
    command.add(CheckpointWriter.class.getName());
    command.add(dir.toString());
    return new ProcessBuilder(command).redirectError(ProcessBuilder.Redirect.DISCARD).start();
  }

  /** Writes checkpoints of a changing replica until killed, printing each one it finishes. */
  static final class CheckpointWriter {
    private CheckpointWriter() {}

    public static void main(String[] args) {
      final Path file = Path.of(args[0], RunDirectory.CHECKPOINT_FILE);
      try (Replica replica = replica()) {
        for (int step = 0; ; step++) {
          replica.network().params().addi(1);
          Checkpoint.write(file, replica, progress(step));
          System.out.println("wrote " + step);
          System.out.flush();
        }
      }
    }
  }
}
