package io.lockstep.driver;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.lockstep.conf.JobConfig;
import io.lockstep.run.WorkerSpans;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** How many workers a stage runs on as the cluster's task slots come and go. */
class ElasticityTest {
  private static JobConfig job(String elastic, String mode) {
    return JobConfig.load()
        .with(
            Map.of(
                "lockstep.train.workers", "3",
                "lockstep.train.elastic", elastic,
                "lockstep.ps.mode", mode));
  }

  @Test
  void shouldShrinkOnlyWhenSparkGaveUpWaitingForSlotsAndGrowBackWhenAllowed() {
    final JobConfig grow = job("grow", "sync");
    assertEquals(3, StageRunner.stageWorkers(grow, 3, 1, false), "lost or registering: wait");
    assertEquals(1, StageRunner.stageWorkers(grow, 3, 1, true));
    assertEquals(2, StageRunner.stageWorkers(grow, 3, 2, true));
    assertEquals(2, StageRunner.stageWorkers(grow, 2, 0, true), "no slots: Spark waits");
    assertEquals(3, StageRunner.stageWorkers(grow, 1, 5, false), "never above the job's");
    assertEquals(2, StageRunner.stageWorkers(grow, 1, 2, false));
    final JobConfig shrink = job("shrink", "sync");
    assertEquals(1, StageRunner.stageWorkers(shrink, 3, 1, true));
    assertEquals(1, StageRunner.stageWorkers(shrink, 1, 3, false), "shrink never grows");
  }

  @Test
  void shouldKeepTheJobsWorkersWhereItMayNotShrink() {
    for (JobConfig job : List.of(job("off", "sync"), job("grow", "async"))) {
      assertEquals(3, StageRunner.stageWorkers(job, 3, 1, true), job.shrinkRefusal());
    }
    assertEquals(
        "lockstep.ps.mode=async: only sync mode computes a lost worker's slice elsewhere with"
            + " unchanged steps",
        job("grow", "async").shrinkRefusal());
  }

  @Test
  void shouldMergeConsecutiveStagesOnTheSameWorkers() {
    final WorkerSpans spans = new WorkerSpans();
    spans.add(0, 30, 2);
    spans.add(30, 30, 2);
    spans.add(60, 30, 1);
    spans.add(90, 30, 2);
    assertEquals(
        List.of(
            new WorkerSpans.Span(0, 60, 2),
            new WorkerSpans.Span(60, 90, 1),
            new WorkerSpans.Span(90, 120, 2)),
        spans.list());
  }
}
