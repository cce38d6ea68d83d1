package io.lockstep.models;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;

import io.lockstep.conf.JobConfig;
import java.util.Map;
import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.Test;

/** Schedules against their formulas, and through Deeplearning4j's JSON and updaters. */
class LearningRateScheduleTest {
  private static final double EXACT = 1e-15;

  private static JobConfig job(Map<String, String> settings) {
    return JobConfig.load().with(settings);
  }

  @Test
  void shouldFollowStepLrPerEpoch() {
    final LearningRateSchedule schedule =
        LearningRateSchedule.of(
            job(
                Map.of(
                    "lockstep.optimizer.learning-rate", "0.1",
                    "lockstep.schedule.name", "step",
                    "lockstep.schedule.step-size", "2",
                    "lockstep.schedule.gamma", "0.5")),
            1000);
    assertEquals(0.1, schedule.valueAt(0, 0), EXACT);
    assertEquals(0.1, schedule.valueAt(999, 1), EXACT);
    assertEquals(0.05, schedule.valueAt(5, 2), EXACT);
    assertEquals(0.05, schedule.valueAt(5, 3), EXACT);
    assertEquals(0.1 * 0.5 * 0.5 * 0.5, schedule.valueAt(5, 7), EXACT);
  }

  @Test
  void shouldFollowCosineAnnealingAfterWarmUp() {
    final double lr = 0.2;
    final double min = 0.01;
    final int warmup = 10;
    final int total = 110;
    final LearningRateSchedule schedule =
        LearningRateSchedule.of(
            job(
                Map.of(
                    "lockstep.optimizer.learning-rate", Double.toString(lr),
                    "lockstep.schedule.name", "cosine",
                    "lockstep.schedule.min-learning-rate", Double.toString(min),
                    "lockstep.schedule.warmup-steps", Integer.toString(warmup))),
            total);
    for (int s = 0; s < warmup; s++) {
      assertEquals(lr * (s + 1) / warmup, schedule.valueAt(s, 0), EXACT, "warm-up step " + s);
    }
    for (int s = warmup; s < total; s++) {
      final double expected =
          min + (lr - min) * (1 + Math.cos(Math.PI * (s - warmup) / (total - warmup))) / 2;
      assertEquals(expected, schedule.valueAt(s, 0), EXACT, "step " + s);
    }
    assertEquals(lr, schedule.valueAt(warmup, 0), EXACT);
    assertEquals(min + (lr - min) / 2, schedule.valueAt(warmup + 50, 0), 1e-12);
    assertEquals(min, schedule.valueAt(total, 0), EXACT);
  }

  @Test
  void shouldScaleTheBaseRateLinearlyWithTheGlobalBatch() {
    final JobConfig scaled =
        job(
            Map.of(
                "lockstep.optimizer.learning-rate", "0.1",
                "lockstep.optimizer.scale-learning-rate", "true",
                "lockstep.optimizer.reference-batch-size", "256",
                "lockstep.train.batch-size", "1024"));
    assertEquals(0.4, LearningRateSchedule.of(scaled, 10).valueAt(3, 0), 1e-15);
    final JobConfig plain =
        job(Map.of("lockstep.optimizer.learning-rate", "0.1", "lockstep.train.batch-size", "1024"));
    assertEquals(0.1, LearningRateSchedule.of(plain, 10).valueAt(3, 0), EXACT);
  }

  @Test
  void shouldReachEveryUpdaterAndSurviveDeeplearning4jJson() {
    for (String optimizer :
        new String[] {"sgd", "momentum", "nesterov", "adam", "adagrad", "rmsprop"}) {
      final JobConfig job =
          job(
              Map.of(
                  "lockstep.optimizer.name", optimizer,
                  "lockstep.optimizer.learning-rate", "0.3",
                  "lockstep.schedule.name", "cosine",
                  "lockstep.schedule.warmup-steps", "4"));
      final ComputationGraphConfiguration configuration = ModelZoo.configuration(job, 100);
      final ComputationGraphConfiguration copy =
          ComputationGraphConfiguration.fromJson(configuration.toJson());
      assertEquals(configuration, copy, optimizer);
      final ComputationGraph network = new ComputationGraph(copy);
      network.init();
      final var updater = network.getLayer("conv1").conf().getLayer().getUpdaterByParam("W");
      assertSame(LearningRateSchedule.class, scheduleOf(updater).getClass(), optimizer);
      assertEquals(0.3 * 2 / 4, updater.getLearningRate(1, 0), EXACT, optimizer);
      assertEquals(
          LearningRateSchedule.of(job, 100).valueAt(57, 0),
          updater.getLearningRate(57, 0),
          EXACT,
          optimizer);
    }
  }

  private static Object scheduleOf(org.nd4j.linalg.learning.config.IUpdater updater) {
    try {
      return updater.getClass().getMethod("getLearningRateSchedule").invoke(updater);
    } catch (ReflectiveOperationException e) {
      throw new AssertionError(updater.getClass() + " has no learning-rate schedule", e);
    }
  }
}
