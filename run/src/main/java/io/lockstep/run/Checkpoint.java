package io.lockstep.run;

import io.lockstep.conf.ConfigurationException;
import io.lockstep.models.ModelFile;
import io.lockstep.worker.ModelState;
import io.lockstep.worker.Replica;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.util.ModelSerializer;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * Where a run stands between two stages, in {@code checkpoint.zip}: a Deeplearning4j {@code
 * ModelSerializer} zip (configuration, parameters, optimizer state — loadable by any Deeplearning4j
 * program) plus a {@value #ENTRY} entry with the run's position and history and the CRC-32 of the
 * parameters and optimizer state, which {@link #read} verifies, so a damaged file is refused rather
 * than resumed from. The shuffle needs no stored generator state: an epoch's order is a pure
 * function of (seed, epoch), so (epoch, step) is the whole position in the data.
 *
 * @param progress the run's position and history
 * @param parameters the flat parameters
 * @param updaterState the flat optimizer state
 */
public record Checkpoint(Progress progress, float[] parameters, float[] updaterState) {
  /** The zip entry (under {@code objects/}) holding the {@link Saved} progress as JSON. */
  static final String ENTRY = "lockstep-progress";

  /**
   * What the {@value #ENTRY} entry holds.
   *
   * @param progress the run's position and history
   * @param checksum CRC-32 of the parameters and optimizer state ({@link Replica#crc32})
   */
  record Saved(Progress progress, long checksum) {}

  /**
   * The run's position and what it has measured so far.
   *
   * @param model the model's name
   * @param optimizer the optimizer's name
   * @param seed the job's seed
   * @param batchSize the global batch
   * @param stepsPerEpoch the steps of every epoch
   * @param totalSteps the steps of the whole run as planned when it was written
   * @param workers the workers that wrote it
   * @param epoch the epoch to continue in, from 0
   * @param step the step of that epoch to continue at, from 0
   * @param iteration the optimizer steps applied so far (the global step)
   * @param epochCount the epochs completed, as the schedules count them
   * @param samples the training samples of the epochs completed
   * @param trainSeconds the training time of the epochs completed
   * @param epochLossSum the current epoch's loss summed over its samples so far
   * @param epochSamples the current epoch's samples so far
   * @param epochSeconds the current epoch's training time so far
   * @param phaseNs per phase (data, compute, sync, apply), nanoseconds summed over workers
   * @param history the epochs completed
   * @param bestAccuracy the best test accuracy so far, NaN before the first epoch ends
   * @param bestEpoch the epoch (from 1) of the best accuracy, 0 before the first
   */
  public record Progress(
      String model,
      String optimizer,
      long seed,
      int batchSize,
      int stepsPerEpoch,
      long totalSteps,
      int workers,
      int epoch,
      int step,
      int iteration,
      int epochCount,
      long samples,
      double trainSeconds,
      double epochLossSum,
      long epochSamples,
      double epochSeconds,
      long[] phaseNs,
      List<TrainingSummary.Epoch> history,
      double bestAccuracy,
      int bestEpoch) {}

  /**
   * Writes a checkpoint atomically ({@link RunFiles#writeAtomically}: a temporary file, flushed,
   * renamed over the previous checkpoint). A crash leaves the previous checkpoint whole.
   *
   * @param target the checkpoint file
   * @param replica the replica to save
   * @param progress the run's position
   */
  public static void write(Path target, Replica replica, Progress progress) {
    final ComputationGraph network = replica.network();
    final long checksum = Replica.crc32(network.params().toFloatVector(), updaterState(network));
    final String json = RunFiles.JSON.toJson(new Saved(progress, checksum));
    try {
      RunFiles.writeAtomically(
          target,
          tmp -> {
            ModelSerializer.writeModel(network, tmp.toFile(), true);
            ModelSerializer.addObjectToFile(tmp.toFile(), ENTRY, json);
          });
    } catch (IOException e) {
      throw new UncheckedIOException(target + ": cannot write the checkpoint (" + e + ")", e);
    }
  }

  /**
   * Reads a checkpoint.
   *
   * @param file the checkpoint file
   * @return its contents
   * @throws ConfigurationException naming the file when it is missing, damaged ({@link
   *     ModelFile#check}) or not a checkpoint
   */
  public static Checkpoint read(Path file) {
    if (!Files.exists(file)) {
      throw new ConfigurationException(
          file
              + ": no checkpoint; --resume takes a run directory that holds "
              + RunDirectory.CHECKPOINT_FILE);
    }
    ModelFile.check(file, file.toString(), "resume from a copy, or start the run again");
    try {
      final ComputationGraph network = ModelSerializer.restoreComputationGraph(file.toFile(), true);
      final String json = ModelSerializer.getObjectFromFile(file.toFile(), ENTRY);
      final Saved saved = RunFiles.JSON.fromJson(json, Saved.class);
      if (saved == null || saved.progress() == null) {
        throw new ConfigurationException(
            file + ": no run progress in it; not a Lockstep checkpoint");
      }
      final float[] parameters = network.params().toFloatVector();
      final float[] updater = updaterState(network);
      final long stored = saved.checksum();
      final long actual = Replica.crc32(parameters, updater);
      if (stored != actual) {
        throw new ConfigurationException(
            String.format(
                "%s: damaged (its parameters' CRC-32 is %08x, written as %08x); resume from a"
                    + " copy, or start the run again",
                file, actual, stored));
      }
      return new Checkpoint(saved.progress(), parameters, updater);
    } catch (ConfigurationException e) {
      throw e;
    } catch (IOException | RuntimeException e) {
      final String message = e.getMessage();
      throw new ConfigurationException(
          file
              + ": not a readable Lockstep checkpoint ("
              + (message == null || message.isBlank()
                  ? e.getClass().getSimpleName()
                  : message.lines().findFirst().orElse(message))
              + ")",
          e);
    }
  }

  /** The optimizer state as floats, empty for an updater without state. */
  private static float[] updaterState(ComputationGraph network) {
    final INDArray state =
        network.getUpdater() == null ? null : network.getUpdater().getStateViewArray();
    return state == null ? new float[0] : state.toFloatVector();
  }

  /**
   * The replica state to continue from, under the (possibly re-planned) configuration.
   *
   * @param configurationJson the configuration of the resumed job
   * @return the state
   */
  public ModelState state(String configurationJson) {
    return new ModelState(
        configurationJson, parameters, updaterState, progress.iteration(), progress.epochCount());
  }
}
