package io.lockstep.jobs;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
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

  /** {@code parameter-server} on 127.0.0.1:40300 with a secret file. */
  private static String[] shardServer(String secretFile) {
    return new String[] {
      "parameter-server", "--host", "127.0.0.1", "--port", "40300", "--secret-file", secretFile
    };
  }

  @Test
  void oneLineWithoutATraceUnlessVerbose(@TempDir Path tmp) throws Exception {
    final Path file = Files.writeString(tmp.resolve("file"), "x");
    final Path openSecret = Files.write(tmp.resolve("open-secret"), new byte[32]);
    Files.setPosixFilePermissions(openSecret, PosixFilePermissions.fromString("rw-r--r--"));
    final Path shortSecret = Files.write(tmp.resolve("short-secret"), new byte[8]);
    Files.setPosixFilePermissions(shortSecret, PosixFilePermissions.fromString("rw-------"));
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
      {"train", "--workers", "3", "--set", "lockstep.spark.master=local[2]"},
      {"train", "--set", "lockstep.ps.host=0.0.0.0"},
      {
        "train",
        "--set",
        "lockstep.ps.transport=udp",
        "--set",
        "lockstep.ps.shard-servers=127.0.0.1:40300"
      },
      {
        "train",
        "--set",
        "lockstep.ps.transport=udp",
        "--set",
        "lockstep.ps.shard-servers=127.0.0.1:40300",
        "--set",
        "lockstep.ps.secret-file=" + tmp.resolve("no-secret")
      },
      {"parameter-server", "--host", "127.0.0.1", "--port", "40300"},
      shardServer(openSecret.toString()),
      shardServer(shortSecret.toString()),
      {"report", tmp.toString()},
      {"train", "--set", "lockstep.run.progress=sometimes"},
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
    // more workers than a local master's threads: refused at once, not after Spark's retries
    final String slots =
        run("train", "--workers", "3", "--set", "lockstep.spark.master=local[2]").lines().get(0);
    assertTrue(slots.contains("needs 3 task slots") && slots.contains("local[3]"), slots);
    // the secret file's problems name the file and the fix
    assertTrue(run(shardServer("x")).lines().get(0).contains("head -c 32 /dev/urandom"));
    // a report of a folder no run wrote says so
    final String report = run("report", tmp.toString()).lines().get(0);
    assertTrue(report.contains("not a run directory (no job.conf)"), report);
    assertFalse(Files.exists(tmp.resolve("report.html")));
    final String open = run(shardServer(openSecret.toString())).lines().get(0);
    assertTrue(open.contains("chmod 600 " + openSecret), open);
  }
}
