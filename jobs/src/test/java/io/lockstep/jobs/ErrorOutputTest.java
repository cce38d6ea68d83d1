package io.lockstep.jobs;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * What a refused command prints: one line naming the problem, exit 2, no stack trace; the trace
 * only with {@code --verbose}.
 */
class ErrorOutputTest {

  private record Outcome(int status, List<String> lines) {}

  private static Outcome run(String... args) {
    final PrintStream original = System.err;
    final ByteArrayOutputStream captured = new ByteArrayOutputStream();
    System.setErr(new PrintStream(captured, true, StandardCharsets.UTF_8));
    try {
      final int status = Lockstep.execute(args);
      return new Outcome(status, captured.toString(StandardCharsets.UTF_8).lines().toList());
    } finally {
      System.setErr(original);
    }
  }

  @Test
  void oneLineWithoutATraceUnlessVerbose(@TempDir Path tmp) throws Exception {
    final Path file = Files.writeString(tmp.resolve("file"), "x");
    final Path broken =
        Files.writeString(
            tmp.resolve("broken.conf"), "lockstep {\n  train {\n    epochs = = 3\n  }\n}\n");
    final String[][] refused = {
      {"train", "--set", "lockstep.train.wokers=3"},
      {"train", "--workers", "0"},
      {"train", "--set", "lockstep.train.batch-size=big"},
      {"train", "no-such-job"},
      {"train", tmp.resolve("missing.conf").toString()},
      {"train", "--run-dir", file.toString()},
      {"train", "--resume", tmp.resolve("none").toString()},
      {"train", broken.toString()},
      {"train", "shapes-detection", "--set", "lockstep.data.train-samples=16"},
    };
    for (String[] args : refused) {
      final Outcome plain = run(args);
      final String command = String.join(" ", args);
      assertEquals(2, plain.status(), command + ": " + plain.lines());
      assertEquals(1, plain.lines().size(), command + ": " + plain.lines());
      assertTrue(plain.lines().get(0).startsWith("lockstep: "), plain.lines().get(0));
      final String[] verbose = new String[args.length + 1];
      System.arraycopy(args, 0, verbose, 0, args.length);
      verbose[args.length] = "--verbose";
      final Outcome traced = run(verbose);
      assertEquals(2, traced.status(), command + " --verbose");
      assertEquals(plain.lines().get(0), traced.lines().get(0));
      assertTrue(
          traced.lines().stream().anyMatch(line -> line.startsWith("\tat ")),
          command + " --verbose: " + traced.lines());
    }
    assertEquals("x", Files.readString(file), "the file given as a run directory is untouched");
    // a HOCON syntax error names the file and the line
    final String syntax = run("train", broken.toString()).lines().get(0);
    assertTrue(syntax.startsWith("lockstep: " + broken + ": 3: "), syntax);
    // a batch larger than the training set says how large it may be
    final String batch =
        run("train", "shapes-detection", "--set", "lockstep.data.train-samples=16").lines().get(0);
    assertTrue(batch.contains("at most 16"), batch);
    assertFalse(Files.exists(tmp.resolve("none")));
  }
}
