package io.lockstep.run;

import io.lockstep.conf.ConfigurationException;
import io.lockstep.models.ModelFile;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * How far two runs' final models and loss curves are apart: the figures the exactness bounds are
 * stated in (largest parameter difference relative to the largest parameter, the fraction of
 * parameters beyond a tolerance, the largest relative difference of the per-step losses).
 *
 * @param parameters parameters compared
 * @param identical whether the two models hold the same bits
 * @param maxRelativeDifference max |a - b| / max |b|
 * @param tolerance the relative tolerance counted against
 * @param beyondTolerance parameters with |a - b| > tolerance x max |b|
 * @param steps per-step losses compared
 * @param maxLossDifference max over steps of |loss a - loss b| / |loss b|
 */
public record RunComparison(
    long parameters,
    boolean identical,
    double maxRelativeDifference,
    double tolerance,
    long beyondTolerance,
    int steps,
    double maxLossDifference) {

  /**
   * Compares two run directories' {@code model.zip} and {@code metrics.jsonl}.
   *
   * @param a the run under test
   * @param b the reference run
   * @param tolerance relative tolerance, such as 1e-5
   * @return the comparison
   * @throws ConfigurationException when a run is missing its files or the models differ in size
   */
  public static RunComparison of(Path a, Path b, double tolerance) {
    final float[] x = parameters(a);
    final float[] y = parameters(b);
    if (x.length != y.length) {
      throw new ConfigurationException(
          a + " and " + b + " hold models of " + x.length + " and " + y.length + " parameters");
    }
    double max = 0;
    for (float v : y) {
      max = Math.max(max, Math.abs(v));
    }
    double largest = 0;
    long beyond = 0;
    boolean identical = true;
    for (int i = 0; i < x.length; i++) {
      identical &= Float.floatToRawIntBits(x[i]) == Float.floatToRawIntBits(y[i]);
      final double difference = Math.abs((double) x[i] - y[i]);
      largest = Math.max(largest, difference);
      if (difference > tolerance * max) {
        beyond++;
      }
    }
    final List<StepMetrics> lossesA = metrics(a);
    final List<StepMetrics> lossesB = metrics(b);
    if (lossesA.size() != lossesB.size()) {
      throw new ConfigurationException(
          a + " and " + b + " trained " + lossesA.size() + " and " + lossesB.size() + " steps");
    }
    double lossDifference = 0;
    for (int s = 0; s < lossesA.size(); s++) {
      final double reference = lossesB.get(s).loss();
      lossDifference =
          Math.max(
              lossDifference, Math.abs(lossesA.get(s).loss() - reference) / Math.abs(reference));
    }
    return new RunComparison(
        x.length,
        identical,
        max == 0 ? largest : largest / max,
        tolerance,
        beyond,
        lossesA.size(),
        lossDifference);
  }

  /**
   * @return the comparison as the lines {@code bin/lockstep compare} prints
   */
  public String describe() {
    return String.format(
        "parameters: %d, bit-identical: %s%n"
            + "max |a - b| / max |b|: %.3e%n"
            + "parameters with |a - b| > %.0e x max |b|: %d (%.4f%%)%n"
            + "loss curves: %d steps, max relative difference %.3e%n",
        parameters,
        identical ? "yes" : "no",
        maxRelativeDifference,
        tolerance,
        beyondTolerance,
        100.0 * beyondTolerance / parameters,
        steps,
        maxLossDifference);
  }

  /**
   * This comparison beside the noise floor: {@code floor} compares a second run of the reference's
   * configuration, changed only in its rounding (another thread count), with the reference.
   *
   * @param floor that comparison
   * @return the lines {@code bin/lockstep compare --floor} adds
   */
  public String describeAgainst(RunComparison floor) {
    final double ratio =
        floor.maxRelativeDifference == 0
            ? (maxRelativeDifference == 0 ? 0 : Double.POSITIVE_INFINITY)
            : maxRelativeDifference / floor.maxRelativeDifference;
    return String.format(
        "noise floor (max |c - b| / max |b|): %.3e, bit-identical: %s%n"
            + "distance / noise floor: %.2f%n",
        floor.maxRelativeDifference, floor.identical ? "yes" : "no", ratio);
  }

  private static float[] parameters(Path run) {
    final Path model = run.resolve(RunDirectory.MODEL_FILE);
    if (!Files.exists(model)) {
      throw new ConfigurationException(model + ": no such file; compare takes two run directories");
    }
    return ModelFile.restoreGraph(
            model, model.toString(), "compare another run, or train this one again", false)
        .params()
        .toFloatVector();
  }

  private static List<StepMetrics> metrics(Path run) {
    final Path file = run.resolve(RunDirectory.METRICS_FILE);
    try {
      return StepMetrics.read(file);
    } catch (IOException | RuntimeException e) {
      throw new ConfigurationException(
          file + ": cannot read the run's metrics (" + e.getMessage() + ")");
    }
  }
}
