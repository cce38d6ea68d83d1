package io.lockstep.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import io.lockstep.jobs.Lockstep;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.function.Supplier;

/** The command line, run in the test's JVM. */
final class Cli {
  private Cli() {}

  /**
   * Runs a command that must be refused: it exits with {@code expected} and leaves no run
   * directory.
   *
   * @param expected the exit status
   * @param runDir passed as {@code --run-dir}; must not exist afterwards
   * @param args the command before {@code --run-dir}
   */
  static void assertRefused(int expected, Path runDir, String... args) {
    final String[] withRunDir = Arrays.copyOf(args, args.length + 2);
    withRunDir[args.length] = "--run-dir";
    withRunDir[args.length + 1] = runDir.toString();
    assertExit(expected, withRunDir);
    assertFalse(Files.exists(runDir), () -> String.join(" ", args) + " left " + runDir);
  }

  /**
   * Waits until a run has written {@code steps} step lines of {@code metrics.jsonl} (a stage has
   * ended past them), for at most 5 minutes.
   *
   * @param run the run directory
   * @param steps the lines to wait for
   * @param running whether the run is still going; when it is not, why, for the assertion
   */
  static void awaitSteps(Path run, int steps, Supplier<String> running) throws Exception {
    final Path metrics = run.resolve("metrics.jsonl");
    final long deadline = System.nanoTime() + 300_000_000_000L;
    while (!(Files.isRegularFile(metrics)
        && Files.readAllLines(metrics).stream().filter(l -> l.contains("\"type\":\"step\"")).count()
            >= steps)) {
      final String ended = running.get();
      assertTrue(ended == null, () -> "the run ended before step " + steps + ": " + ended);
      assertTrue(System.nanoTime() < deadline, "no progress within 5 minutes");
      Thread.sleep(50);
    }
  }

  /** A run's {@code summary.json}. */
  static JsonObject summary(Path run) throws IOException {
    return JsonParser.parseString(
            Files.readString(run.resolve("summary.json"), StandardCharsets.UTF_8))
        .getAsJsonObject();
  }

  /**
   * Runs the command line in this JVM and checks its exit status; on a mismatch the assertion
   * carries what the command wrote to stderr, so a CI log names the cause.
   */
  static void assertExit(int expected, String... args) {
    final PrintStream original = System.err;
    final ByteArrayOutputStream captured = new ByteArrayOutputStream();
    final OutputStream tee =
        new OutputStream() {
          @Override
          public void write(int b) {
            original.write(b);
            captured.write(b);
          }

          @Override
          public void write(byte[] bytes, int offset, int length) {
            original.write(bytes, offset, length);
            captured.write(bytes, offset, length);
          }
        };
    final int status;
    System.setErr(new PrintStream(tee, true, StandardCharsets.UTF_8));
    try {
      status = Lockstep.execute(args);
    } finally {
      System.err.flush();
      System.setErr(original);
    }
    assertEquals(
        expected,
        status,
        () ->
            String.join(" ", args)
                + " -> stderr: "
                + captured
                    .toString(StandardCharsets.UTF_8)
                    .lines()
                    .filter(line -> line.startsWith("lockstep:") || line.contains("ERROR"))
                    .toList());
  }
}
