package io.lockstep.it;

import static org.junit.jupiter.api.Assertions.assertEquals;

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

/** The command line, run in the test's JVM. */
final class Cli {
  private Cli() {}

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
