package io.lockstep.run;

import com.google.gson.JsonObject;
import io.lockstep.worker.ProcessResources;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * One epoch's line of {@code metrics.jsonl}, with {@code "type": "epoch"}, written after the
 * epoch's evaluation.
 *
 * @param type always {@value #TYPE}
 * @param epoch the epoch, from 1
 * @param step the global step the epoch ended at
 * @param trainLoss the mean training loss over the epoch's samples
 * @param testMetric what {@code testValue} measures: accuracy, mean average precision, IoU
 * @param testValue the test metric of the model after the epoch
 * @param seconds the epoch's stages, set-up included
 * @param imagesPerSecond the epoch's samples over {@code seconds}
 * @param resources what the driver held after the epoch's evaluation and each executor at the end
 *     of its last stage: resident memory, heap after GC, JavaCPP's off-heap bytes, threads, open
 *     files (what a long run keeps flat)
 */
public record EpochMetrics(
    String type,
    int epoch,
    long step,
    double trainLoss,
    String testMetric,
    double testValue,
    double seconds,
    double imagesPerSecond,
    List<ProcessResources> resources) {

  /** The {@code type} of an epoch's line. */
  public static final String TYPE = "epoch";

  /**
   * Reads the epochs of a {@code metrics.jsonl}.
   *
   * @param file the file
   * @return its epochs, in file order
   * @throws IOException when the file cannot be read
   * @throws com.google.gson.JsonParseException when a line is not JSON
   */
  static List<EpochMetrics> read(Path file) throws IOException {
    return epochs(StepMetrics.lines(file));
  }

  /**
   * The epochs among a {@code metrics.jsonl}'s lines.
   *
   * @param lines the file's {@link StepMetrics#lines}
   * @return its epochs, in file order
   */
  static List<EpochMetrics> epochs(List<JsonObject> lines) {
    final List<EpochMetrics> epochs = new ArrayList<>();
    for (JsonObject line : lines) {
      if (StepMetrics.typeOf(line).equals(TYPE)) {
        epochs.add(RunFiles.JSON.fromJson(line, EpochMetrics.class));
      }
    }
    return epochs;
  }
}
