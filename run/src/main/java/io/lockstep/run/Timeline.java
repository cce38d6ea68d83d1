package io.lockstep.run;

import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import io.lockstep.protocol.ShardSpan;
import io.lockstep.worker.StageReport;
import io.lockstep.worker.StepPhases;
import java.nio.file.Path;
import java.util.List;

/**
 * The run's {@code timeline.json}: Chrome's trace event format (Perfetto, {@code
 * chrome://tracing}), a track per worker with each step and its phases as nested spans, a track per
 * parameter server shard with each step's wait for the slowest worker and its summing, and a driver
 * track with the stages and evaluations. Times are microseconds from the run's start; the workers'
 * and shards' clocks are their hosts' wall clocks. Traces the run's first {@code
 * lockstep.run.timeline-steps} steps.
 */
public final class Timeline {

  private static final int DRIVER = 3;
  private static final int WORKERS = 1;
  private static final int SERVER = 2;
  private static final String[] PHASES = {"data", "compute", "send", "wait", "receive", "apply"};

  private final String job;
  private final long maxSteps;
  private final long originMicros;
  private final JsonArray events = new JsonArray();
  private final boolean remoteShards;
  private long stepsTraced;
  private int workersNamed;
  private int shardsNamed;

  /**
   * @param job the job's name
   * @param maxSteps the steps to trace
   * @param originMicros time zero of the trace, microseconds since the epoch
   * @param remoteShards whether the shards run in processes of their own, whose spans are not
   *     collected
   */
  public Timeline(String job, long maxSteps, long originMicros, boolean remoteShards) {
    this.job = job;
    this.maxSteps = maxSteps;
    this.originMicros = originMicros;
    this.remoteShards = remoteShards;
    name("process_name", DRIVER, -1, "driver");
    name("process_name", WORKERS, -1, "workers");
    name("process_name", SERVER, -1, "parameter server");
    name("thread_name", DRIVER, 0, "stages and evaluation");
  }

  /**
   * @return whether the timeline takes no more steps
   */
  boolean full() {
    return stepsTraced >= maxSteps;
  }

  /**
   * Adds a stage: its span on the driver's track, the steps it trained on the workers' tracks, the
   * shards' spans of those steps.
   *
   * @param description what the stage was, as Spark shows it
   * @param startMicros when the driver started it
   * @param endMicros when its reports were in
   * @param firstGlobalStep its first step, from 0
   * @param epoch its epoch, from 0
   * @param reports every worker's report, by rank
   * @param spans the shards' spans of its steps
   */
  public void stage(
      String description,
      long startMicros,
      long endMicros,
      long firstGlobalStep,
      int epoch,
      List<StageReport> reports,
      List<ShardSpan> spans) {
    if (full()) {
      return;
    }
    span(DRIVER, 0, description, startMicros, endMicros - startMicros, null);
    final int steps = (int) Math.min(reports.get(0).stepSamples().length, maxSteps - stepsTraced);
    for (StageReport report : reports) {
      final int rank = report.rank();
      while (workersNamed <= rank) {
        name("thread_name", WORKERS, workersNamed, "worker " + workersNamed);
        workersNamed++;
      }
      final StepPhases phases = report.phases();
      for (int i = 0; i < steps; i++) {
        final JsonObject args = new JsonObject();
        args.addProperty("step", firstGlobalStep + i + 1);
        args.addProperty("epoch", epoch + 1);
        args.addProperty("samples", report.stepSamples()[i]);
        long at = phases.startMicros()[i];
        span(
            WORKERS, rank, "step " + (firstGlobalStep + i + 1), at, phases.totalNs(i) / 1000, args);
        final long[] durations = {
          phases.dataNs()[i],
          phases.computeNs()[i],
          phases.sendNs()[i],
          phases.waitNs()[i],
          phases.receiveNs()[i],
          phases.applyNs()[i]
        };
        for (int p = 0; p < PHASES.length; p++) {
          if (durations[p] > 0) {
            span(WORKERS, rank, PHASES[p], at, durations[p] / 1000, null);
            at += durations[p] / 1000;
          }
        }
      }
    }
    for (ShardSpan span : spans) {
      if (span.step() >= firstGlobalStep + steps) {
        continue;
      }
      while (shardsNamed <= span.shard()) {
        name("thread_name", SERVER, shardsNamed, "shard " + shardsNamed);
        shardsNamed++;
      }
      final JsonObject args = new JsonObject();
      args.addProperty("step", span.step() + 1);
      span(
          SERVER,
          span.shard(),
          "wait for workers",
          span.startMicros(),
          span.gatheredMicros() - span.startMicros(),
          args);
      span(
          SERVER,
          span.shard(),
          "sum and send",
          span.gatheredMicros(),
          span.endMicros() - span.gatheredMicros(),
          args);
    }
    stepsTraced += steps;
  }

  /**
   * Adds an evaluation of the test set to the driver's track.
   *
   * @param epoch the epoch evaluated, from 0
   * @param startMicros when it started
   * @param endMicros when it ended
   */
  public void evaluation(int epoch, long startMicros, long endMicros) {
    if (maxSteps > 0) {
      span(DRIVER, 0, "evaluate epoch " + (epoch + 1), startMicros, endMicros - startMicros, null);
    }
  }

  /**
   * Writes the trace, replacing the file atomically; writes nothing when the timeline traces no
   * steps ({@code lockstep.run.timeline-steps=0}).
   *
   * @param file where
   */
  public void write(Path file) {
    if (maxSteps == 0) {
      return;
    }
    final JsonObject trace = new JsonObject();
    trace.add("traceEvents", events);
    trace.addProperty("displayTimeUnit", "ms");
    final JsonObject about = new JsonObject();
    about.addProperty("job", job);
    about.addProperty("origin_micros", originMicros);
    about.addProperty("steps_traced", stepsTraced);
    about.addProperty(
        "server_spans",
        remoteShards
            ? "none: the shards run in processes of their own (lockstep.ps.shard-servers)"
            : "every shard in the driver's JVM");
    trace.add("otherData", about);
    // streamed: the trace is megabytes, and a String of it each epoch was a large part of what the
    // driver allocated in a long run
    RunFiles.writeJson(file, trace);
  }

  private void name(String what, int pid, int tid, String name) {
    final JsonObject event = new JsonObject();
    event.addProperty("name", what);
    event.addProperty("ph", "M");
    event.addProperty("pid", pid);
    if (tid >= 0) {
      event.addProperty("tid", tid);
    }
    final JsonObject args = new JsonObject();
    args.addProperty("name", name);
    event.add("args", args);
    events.add(event);
  }

  private void span(int pid, int tid, String name, long atMicros, long micros, JsonObject args) {
    final JsonObject event = new JsonObject();
    event.addProperty("name", name);
    event.addProperty("ph", "X");
    event.addProperty("pid", pid);
    event.addProperty("tid", tid);
    event.addProperty("ts", atMicros - originMicros);
    event.addProperty("dur", Math.max(0, micros));
    if (args != null) {
      event.add("args", args);
    }
    events.add(event);
  }
}
