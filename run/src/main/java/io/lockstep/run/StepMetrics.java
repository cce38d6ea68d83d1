package io.lockstep.run;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import io.lockstep.worker.StageReport;
import io.lockstep.worker.StepPhases;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * One step's line of {@code metrics.jsonl}: what one global step did, in snake_case JSON, with
 * {@code "type": "step"}. The file's other lines are {@link EpochMetrics}.
 *
 * @param type always {@value #TYPE}
 * @param step the global step, from 1 (the number of optimizer steps applied after it)
 * @param epoch the epoch, from 1
 * @param samples the global batch of the step
 * @param workers the workers that computed the step: the job's, or fewer after some were lost
 * @param loss the mean training loss over the batch, before the step
 * @param learningRate the learning rate the step applied
 * @param gradientNorm the L2 norm of the mean gradient, before clipping
 * @param imagesPerSecond the global batch over the slowest worker's time for the step
 * @param phases where the step's time went, the mean over the workers
 * @param workerPhases where the step's time went on each worker, by rank
 */
public record StepMetrics(
    String type,
    long step,
    int epoch,
    int samples,
    int workers,
    double loss,
    double learningRate,
    double gradientNorm,
    double imagesPerSecond,
    Phases phases,
    List<Phases> workerPhases) {

  /** The {@code type} of a step's line. */
  public static final String TYPE = "step";

  /**
   * One step's phases on one worker (or their mean), in milliseconds: they follow one another
   * without gaps, see {@link StepPhases}.
   *
   * @param dataMs taking the batch from the prefetcher
   * @param computeMs the forward and backward pass
   * @param sendMs sending what the backward pass had not sent of the gradient
   * @param waitMs waiting for the answer's first chunk (the slowest worker, the sum, the way back)
   * @param receiveMs taking in the rest of the answer
   * @param applyMs the optimizer step
   */
  public record Phases(
      double dataMs,
      double computeMs,
      double sendMs,
      double waitMs,
      double receiveMs,
      double applyMs) {

    /**
     * @return the step's whole time
     */
    public double totalMs() {
      return dataMs + computeMs + sendMs + waitMs + receiveMs + applyMs;
    }

    public static Phases of(StepPhases phases, int step) {
      return new Phases(
          phases.dataNs()[step] / 1e6,
          phases.computeNs()[step] / 1e6,
          phases.sendNs()[step] / 1e6,
          phases.waitNs()[step] / 1e6,
          phases.receiveNs()[step] / 1e6,
          phases.applyNs()[step] / 1e6);
    }

    static Phases mean(List<Phases> all) {
      final double n = all.size();
      return new Phases(
          all.stream().mapToDouble(Phases::dataMs).sum() / n,
          all.stream().mapToDouble(Phases::computeMs).sum() / n,
          all.stream().mapToDouble(Phases::sendMs).sum() / n,
          all.stream().mapToDouble(Phases::waitMs).sum() / n,
          all.stream().mapToDouble(Phases::receiveMs).sum() / n,
          all.stream().mapToDouble(Phases::applyMs).sum() / n);
    }
  }

  /**
   * The lines of a stage's steps.
   *
   * @param firstGlobalStep the global step of the stage's first step, from 0
   * @param epoch the epoch, from 0
   * @param reports every worker's report, by rank
   * @return a line per step of the stage
   */
  public static List<StepMetrics> of(long firstGlobalStep, int epoch, List<StageReport> reports) {
    final List<StepMetrics> lines = new ArrayList<>();
    final StageReport lead = reports.get(0);
    for (int i = 0; i < lead.stepSamples().length; i++) {
      double lossSum = 0;
      int samples = 0;
      final List<Phases> workers = new ArrayList<>();
      for (StageReport report : reports) {
        lossSum += report.stepLossSums()[i];
        samples += report.stepSamples()[i];
        workers.add(Phases.of(report.phases(), i));
      }
      final double slowestMs = workers.stream().mapToDouble(Phases::totalMs).max().orElseThrow();
      lines.add(
          new StepMetrics(
              TYPE,
              firstGlobalStep + i + 1,
              epoch + 1,
              samples,
              reports.size(),
              lossSum / samples,
              lead.learningRates()[i],
              lead.gradientNorms()[i],
              slowestMs > 0 ? samples / (slowestMs / 1e3) : Double.NaN,
              Phases.mean(workers),
              List.copyOf(workers)));
    }
    return lines;
  }

  /**
   * Reads the steps of a {@code metrics.jsonl}; lines without a type (written before epochs had
   * lines of their own) are steps.
   *
   * @param file the file
   * @return its steps, in file order
   * @throws IOException when the file cannot be read
   * @throws com.google.gson.JsonParseException when a line is not JSON
   */
  static List<StepMetrics> read(Path file) throws IOException {
    return steps(lines(file));
  }

  /**
   * The steps among a {@code metrics.jsonl}'s lines.
   *
   * @param lines the file's {@link #lines}
   * @return its steps, in file order
   */
  static List<StepMetrics> steps(List<JsonObject> lines) {
    final List<StepMetrics> steps = new ArrayList<>();
    for (JsonObject line : lines) {
      if (typeOf(line).equals(TYPE)) {
        steps.add(RunFiles.JSON.fromJson(line, StepMetrics.class));
      }
    }
    return steps;
  }

  /**
   * The JSON objects of a {@code metrics.jsonl}, one per non-blank line; a partial last line (an
   * append cut short) is left out.
   *
   * @param file the file
   * @return the lines
   * @throws IOException when the file cannot be read
   * @throws com.google.gson.JsonParseException when a line is not a JSON object
   */
  public static List<JsonObject> lines(Path file) throws IOException {
    final List<JsonObject> objects = new ArrayList<>();
    final String text = Files.readString(file, StandardCharsets.UTF_8);
    // a crash mid-append leaves a last line without its line end: the stage it began is not done
    final String whole = text.endsWith("\n") ? text : text.substring(0, text.lastIndexOf('\n') + 1);
    for (String line : whole.split("\n")) {
      if (!line.isBlank()) {
        final JsonElement element = JsonParser.parseString(line);
        if (!element.isJsonObject()) {
          throw new com.google.gson.JsonParseException("not a JSON object: " + line);
        }
        objects.add(element.getAsJsonObject());
      }
    }
    return objects;
  }

  /**
   * @param line a line of the file
   * @return its type, {@value #TYPE} where it has none
   */
  static String typeOf(JsonObject line) {
    return line.has("type") ? line.get("type").getAsString() : TYPE;
  }
}
