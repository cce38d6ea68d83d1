package io.lockstep.driver;

import static org.junit.jupiter.api.Assertions.assertTrue;

import io.lockstep.conf.ProgressDisplay;
import io.lockstep.worker.StepListener;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.spark.SparkConf;
import org.apache.spark.api.java.JavaSparkContext;
import org.junit.jupiter.api.Test;

/**
 * The driver's bar moves while the stage runs: tasks count their steps into accumulators, executors
 * send them with their heartbeats, the listener draws them. A real Spark in local mode.
 */
class EpochProgressTest {
  private static final int STEPS = 30;

  @Test
  void shouldDrawStepsImagesAndLossWhileTheTasksRun() throws Exception {
    final ByteArrayOutputStream captured = new ByteArrayOutputStream();
    final PrintStream out = new PrintStream(captured, true, StandardCharsets.UTF_8);
    final SparkConf conf =
        new SparkConf()
            .setMaster("local[2]")
            .setAppName("progress test")
            .set("spark.ui.enabled", "false")
            .set("spark.executor.heartbeatInterval", "200ms");
    try (JavaSparkContext spark = new JavaSparkContext(conf)) {
      final EpochProgress progress = EpochProgress.start(spark, ProgressDisplay.AUTO, 2, out, true);
      progress.beginStage("epoch 1/1", 0, STEPS, STEPS);
      final StepListener listener = progress.listener(0, STEPS);
      spark
          .parallelize(List.of(0, 1), 2)
          .foreach(
              rank -> {
                for (int step = 0; step < STEPS; step++) {
                  Thread.sleep(50);
                  listener.stepDone(rank, step, 0.5 * 64, 64);
                }
              });
      progress.endEpoch(2L * STEPS * 64, 0.5 * 2 * STEPS * 64, 3);
    }
    final String text = captured.toString(StandardCharsets.UTF_8);
    // several redraws while the 1.5 s stage ran, each with steps, images/s, the loss and an ETA
    final Matcher bar =
        Pattern.compile(
                "epoch 1/1 \\[[#.]{24}\\] (\\d+)/30 steps  \\d+ images/s  loss 0\\.5000  ETA \\d+:\\d\\d")
            .matcher(text);
    int draws = 0;
    int before = -1;
    boolean monotone = true;
    while (bar.find()) {
      final int steps = Integer.parseInt(bar.group(1));
      monotone &= steps >= before;
      before = steps;
      draws++;
    }
    assertTrue(draws >= 3, "bar drawn " + draws + " times: " + text);
    assertTrue(monotone, text);
    assertTrue(before > 0 && before <= STEPS, text);
    // the epoch ends with its exact figures: every step, no time left
    assertTrue(text.endsWith("] 30/30 steps  1280 images/s  loss 0.5000  ETA 0:00\n"), text);
  }
}
