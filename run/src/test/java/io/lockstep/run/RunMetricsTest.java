package io.lockstep.run;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import io.lockstep.protocol.ShardSpan;
import io.lockstep.worker.StageReport;
import io.lockstep.worker.StepPhases;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The per-step lines of {@code metrics.jsonl} and the {@code timeline.json} of a stage. */
class RunMetricsTest {
  private static final long ORIGIN = 1_000_000_000L;
  private static final long MS = 1_000_000L;

  /** Two steps of one worker: phases in ms (data, compute, send, wait, receive, apply). */
  private static StageReport report(int rank, long[][] stepMs, int samples) {
    final int steps = stepMs.length;
    final StepPhases phases = StepPhases.of(steps);
    long at = ORIGIN + 10_000;
    for (int i = 0; i < steps; i++) {
      phases.startMicros()[i] = at;
      phases.dataNs()[i] = stepMs[i][0] * MS;
      phases.computeNs()[i] = stepMs[i][1] * MS;
      phases.sendNs()[i] = stepMs[i][2] * MS;
      phases.waitNs()[i] = stepMs[i][3] * MS;
      phases.receiveNs()[i] = stepMs[i][4] * MS;
      phases.applyNs()[i] = stepMs[i][5] * MS;
      at += phases.totalNs(i) / 1000;
    }
    final double[] losses = new double[steps];
    final int[] counts = new int[steps];
    for (int i = 0; i < steps; i++) {
      losses[i] = (rank + 1) * samples;
      counts[i] = samples;
    }
    return new StageReport(
        rank,
        (long) samples * steps,
        losses,
        counts,
        new double[] {0.1, 0.1},
        new double[] {2, 3},
        phases,
        0,
        null,
        null);
  }

  private static List<StageReport> stage() {
    return List.of(
        report(0, new long[][] {{1, 50, 0, 9, 1, 4}, {1, 40, 0, 19, 1, 4}}, 64),
        report(1, new long[][] {{2, 58, 0, 1, 1, 3}, {2, 60, 0, 1, 1, 3}}, 64));
  }

  @Test
  void shouldWriteAStepsLossPhasesAndTheSlowestWorkersThroughput() {
    final List<StepMetrics> lines = StepMetrics.of(8, 0, stage());
    assertEquals(2, lines.size());
    final StepMetrics first = lines.get(0);
    assertEquals(9, first.step());
    assertEquals(128, first.samples());
    assertEquals(1.5, first.loss(), 1e-12); // (1 x 64 + 2 x 64) / 128
    assertEquals(2, first.workerPhases().size());
    assertEquals(65, first.workerPhases().get(0).totalMs(), 1e-9);
    assertEquals(65, first.workerPhases().get(1).totalMs(), 1e-9);
    assertEquals(5, first.phases().waitMs(), 1e-9); // mean of 9 and 1
    // step 10: rank 0 took 65 ms, rank 1 took 67 ms: the slower one sets the pace
    assertEquals(128 / 0.067, lines.get(1).imagesPerSecond(), 1e-6);
    final JsonObject json = JsonParser.parseString(RunFiles.JSON.toJson(first)).getAsJsonObject();
    assertEquals("step", json.get("type").getAsString());
    assertEquals(
        50.0,
        json.getAsJsonArray("worker_phases")
            .get(0)
            .getAsJsonObject()
            .get("compute_ms")
            .getAsDouble());
  }

  @Test
  void shouldReadStepsAndEpochsApartAndOldLinesWithoutATypeAsSteps(@TempDir Path run)
      throws Exception {
    final Path file = run.resolve(RunDirectory.METRICS_FILE);
    final List<String> lines = new ArrayList<>();
    lines.add("{\"step\":1,\"epoch\":1,\"samples\":128,\"loss\":2.3}");
    for (StepMetrics step : StepMetrics.of(1, 0, stage())) {
      lines.add(RunFiles.JSON.toJson(step));
    }
    lines.add(
        RunFiles.JSON.toJson(
            new EpochMetrics(
                EpochMetrics.TYPE, 1, 3, 1.4, "test_accuracy", 0.8, 1.5, 256, List.of())));
    RunFiles.writeLines(file, lines);
    assertEquals(
        List.of(1L, 2L, 3L), StepMetrics.read(file).stream().map(StepMetrics::step).toList());
    final List<EpochMetrics> epochs = EpochMetrics.read(file);
    assertEquals(1, epochs.size());
    assertEquals(0.8, epochs.get(0).testValue());
    // a stage's append cut short by a crash: its partial last line is left out
    RunFiles.appendLines(file, List.of(RunFiles.JSON.toJson(StepMetrics.of(3, 0, stage()).get(0))));
    Files.writeString(
        file, "{\"type\":\"step\",\"step\":5,\"epo", java.nio.file.StandardOpenOption.APPEND);
    assertEquals(
        List.of(1L, 2L, 3L, 4L), StepMetrics.read(file).stream().map(StepMetrics::step).toList());
  }

  @Test
  void shouldTraceEachWorkersStepsAndPhasesAndEachShardAsValidTraceJson(@TempDir Path run)
      throws Exception {
    final Timeline timeline = new Timeline("job", 3, ORIGIN, false);
    final List<ShardSpan> spans =
        List.of(
            new ShardSpan(0, 0, ORIGIN + 10_000, ORIGIN + 70_000, ORIGIN + 75_000),
            new ShardSpan(0, 1, ORIGIN + 80_000, ORIGIN + 130_000, ORIGIN + 140_000));
    timeline.stage("job: epoch 1/1, steps 1-2/2", ORIGIN, ORIGIN + 200_000, 0, 0, stage(), spans);
    timeline.stage(
        "job: epoch 2/2, steps 1-2/2", ORIGIN, ORIGIN + 400_000, 2, 1, stage(), List.of());
    assertTrue(timeline.full(), "3 steps traced of a limit of 3");
    timeline.write(run.resolve(RunDirectory.TIMELINE_FILE));
    final JsonObject trace =
        JsonParser.parseString(Files.readString(run.resolve(RunDirectory.TIMELINE_FILE)))
            .getAsJsonObject();
    assertEquals(3, trace.getAsJsonObject("otherData").get("steps_traced").getAsInt());
    int workerSteps = 0;
    int phases = 0;
    int shardSpans = 0;
    for (JsonElement element : trace.getAsJsonArray("traceEvents")) {
      final JsonObject event = element.getAsJsonObject();
      if (!event.get("ph").getAsString().equals("X")) {
        continue;
      }
      final int pid = event.get("pid").getAsInt();
      final String name = event.get("name").getAsString();
      if (pid == 1 && name.startsWith("step ")) {
        workerSteps++;
        if (name.equals("step 1") && event.get("tid").getAsInt() == 0) {
          assertEquals(10_000, event.get("ts").getAsLong());
          assertEquals(65_000, event.get("dur").getAsLong());
        }
      } else if (pid == 1) {
        phases++;
      } else if (pid == 2) {
        shardSpans++;
      }
    }
    assertEquals(2 * 3, workerSteps, "3 steps on each of 2 workers");
    // data, compute, wait, receive, apply each step (send took 0 and has no span)
    assertEquals(2 * 3 * 5, phases);
    assertEquals(2 * 2, shardSpans);
  }
}
