package io.lockstep.driver;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * One line of {@code metrics.jsonl}: what one global step did, in snake_case JSON.
 *
 * @param step the global step, from 1 (the number of optimizer steps applied after it)
 * @param epoch the epoch, from 1
 * @param samples the global batch of the step
 * @param loss the mean training loss over the batch, before the step
 * @param learningRate the learning rate the step applied
 * @param gradientNorm the L2 norm of the mean gradient, before clipping
 */
public record StepMetrics(
    long step, int epoch, int samples, double loss, double learningRate, double gradientNorm) {

  /**
   * Reads a {@code metrics.jsonl}.
   *
   * @param file the file
   * @return its steps, in file order
   * @throws IOException when the file cannot be read
   * @throws com.google.gson.JsonParseException when a line is not a step's JSON
   */
  static List<StepMetrics> read(Path file) throws IOException {
    return Files.readAllLines(file, StandardCharsets.UTF_8).stream()
        .filter(line -> !line.isBlank())
        .map(line -> RunFiles.JSON.fromJson(line, StepMetrics.class))
        .toList();
  }
}
