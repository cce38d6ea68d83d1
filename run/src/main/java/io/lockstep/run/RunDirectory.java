package io.lockstep.run;

import io.lockstep.conf.ConfigurationException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * A run's directory: the name of every file a run leaves there, and whether a run may write into
 * it. The classes that write each file ({@link RunFiles}, {@link Checkpoint}, {@link Timeline},
 * {@link RunReport}) take their names from here.
 */
public final class RunDirectory {
  /** The job file a run directory keeps, for {@code --resume}. */
  public static final String JOB_FILE = "job.conf";

  /** One line per step and per epoch: see {@link StepMetrics} and {@link EpochMetrics}. */
  public static final String METRICS_FILE = "metrics.jsonl";

  /** The model after the last step. */
  public static final String MODEL_FILE = "model.zip";

  /** The model after the epoch with the best test accuracy. */
  public static final String BEST_MODEL_FILE = "best-model.zip";

  /** The run's summary. */
  public static final String SUMMARY_FILE = "summary.json";

  /** The model, optimizer state and position a run resumes from. */
  public static final String CHECKPOINT_FILE = "checkpoint.zip";

  /** The first steps' trace, for chrome://tracing or Perfetto. */
  public static final String TIMELINE_FILE = "timeline.json";

  /** The run's report: charts and the summary, one self-contained HTML page. */
  public static final String REPORT_FILE = "report.html";

  /**
   * Where the scratch baseline of a transfer run trains ({@code lockstep.model.scratch-baseline}).
   */
  public static final String SCRATCH_DIR = "scratch";

  private RunDirectory() {}

  /**
   * Refuses a run directory a new run must not write into: a path that is a file, or the directory
   * of an earlier run (its checkpoint, model or summary), which is never overwritten; a resumed run
   * continues in its own directory.
   *
   * @param runDir where the run's files would go
   * @param resume whether the run continues the one in {@code runDir}
   * @throws ConfigurationException naming the path and what to do instead
   */
  public static void check(Path runDir, boolean resume) {
    if (Files.exists(runDir) && !Files.isDirectory(runDir)) {
      throw new ConfigurationException(
          runDir + ": a file, not a run directory; give --run-dir a new or empty directory");
    }
    if (resume) {
      return;
    }
    for (String file : List.of(SUMMARY_FILE, MODEL_FILE, CHECKPOINT_FILE)) {
      if (Files.exists(runDir.resolve(file))) {
        throw new ConfigurationException(
            String.format(
                "%s holds a run (%s), which is never overwritten; give --run-dir a new directory,"
                    + " or continue that run with --resume %s",
                runDir, file, runDir));
      }
    }
  }
}
