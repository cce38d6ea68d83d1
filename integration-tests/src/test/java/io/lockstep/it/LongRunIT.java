package io.lockstep.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import io.lockstep.driver.TrainingDriver;
import io.lockstep.jobs.Lockstep;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * A long run stays flat: the command line in a JVM of its own, started as {@code bin/lockstep}
 * starts it, trains many short epochs of several stages each (a checkpoint every 5 steps) with an
 * evaluation after each, and the figures every epoch's line reports for the driver (the workers of
 * local mode run in it) stop growing after warm-up.
 */
@Timeout(600)
class LongRunIT {
  private static final int EPOCHS = 18;
  private static final int WARM = 6;

  @Test
  void shouldKeepTheDriverFlatOverManyEpochsAndStages(@TempDir Path scratch) throws Exception {
    final Path run = scratch.resolve("run");
    final Path log = scratch.resolve("train.log");
    final List<String> command = new ArrayList<>();
    command.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
    command.add("-Xmx2g");
    command.addAll(TrainingDriver.REQUIRED_JVM_OPTIONS);
    final String cache = System.getProperty("org.bytedeco.javacpp.cachedir");
    if (cache != null) {
      command.add("-Dorg.bytedeco.javacpp.cachedir=" + cache);
    }
    command.addAll(List.of("-cp", System.getProperty("java.class.path"), Lockstep.class.getName()));
    command.addAll(
        List.of(
            "train",
            "--workers",
            "2",
            "--epochs",
            Integer.toString(EPOCHS),
            "--batch-size",
            "128",
            "--set",
            "lockstep.data.train-samples=2560",
            "--set",
            "lockstep.checkpoint.every-steps=5",
            "--run-dir",
            run.toString()));
    final ProcessBuilder builder =
        new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(log.toFile());
    // the environment bin/lockstep gives the driver
    builder.environment().putAll(TrainingDriver.ALLOCATOR_ENVIRONMENT);
    builder.environment().put("SPARK_LOCAL_IP", "127.0.0.1");
    final Process process = builder.start();
    try {
      assertTrue(process.waitFor(540, TimeUnit.SECONDS), "the run did not end in 9 minutes");
      assertEquals(0, process.exitValue(), () -> "the run failed: " + tail(log));
    } finally {
      process.destroyForcibly();
      process.waitFor();
    }
    final List<JsonObject> driver = new ArrayList<>();
    for (String line : Files.readAllLines(run.resolve("metrics.jsonl"))) {
      final JsonObject json = JsonParser.parseString(line).getAsJsonObject();
      if (json.get("type").getAsString().equals("epoch")) {
        for (JsonElement process1 : json.getAsJsonArray("resources")) {
          final JsonObject figures = process1.getAsJsonObject();
          if (figures.get("process").getAsString().equals("driver")) {
            driver.add(figures);
          }
        }
      }
    }
    assertEquals(EPOCHS, driver.size(), "one driver line per epoch");
    final StringBuilder table = new StringBuilder();
    for (int epoch = 1; epoch <= EPOCHS; epoch++) {
      final JsonObject f = driver.get(epoch - 1);
      table.append(
          String.format(
              "%nepoch %d: resident %d MB, heap after GC %d MB, threads %d, open files %d",
              epoch,
              f.get("resident_bytes").getAsLong() >> 20,
              f.get("heap_after_gc_bytes").getAsLong() >> 20,
              f.get("threads").getAsInt(),
              f.get("open_files").getAsInt()));
    }
    final JsonObject warm = driver.get(WARM - 1);
    final JsonObject last = driver.get(EPOCHS - 1);
    final double growth =
        (double) last.get("resident_bytes").getAsLong() / warm.get("resident_bytes").getAsLong()
            - 1;
    assertTrue(
        growth < 0.05,
        String.format(
            "resident memory grew %.1f%% from epoch %d to %d:%s",
            100 * growth, WARM, EPOCHS, table));
    // Spark's block-manager pools (removing each stage's broadcast) grow to a plateau in the first
    // epochs when stages come every few seconds, then stay within a few threads of it
    assertTrue(
        last.get("threads").getAsInt() <= warm.get("threads").getAsInt() * 1.1,
        "threads grew:" + table);
    assertTrue(
        last.get("open_files").getAsInt() <= warm.get("open_files").getAsInt() + 4,
        "open files grew:" + table);
  }

  private static String tail(Path log) {
    try {
      final List<String> lines = Files.readAllLines(log);
      return String.join("\n", lines.subList(Math.max(0, lines.size() - 30), lines.size()));
    } catch (java.io.IOException e) {
      return log + ": " + e.getMessage();
    }
  }
}
