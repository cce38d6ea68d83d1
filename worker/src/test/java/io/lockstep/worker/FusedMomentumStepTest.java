package io.lockstep.worker;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.lockstep.conf.JobConfig;
import io.lockstep.conf.Keys;
import io.lockstep.models.ModelZoo;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.Map;
import java.util.Random;
import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.gradient.Gradient;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.nn.workspace.LayerWorkspaceMgr;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * The fused momentum step against Deeplearning4j's updater on the same network and gradients: the
 * parameters and the velocity equal to the bit after every step, through a learning-rate schedule
 * and changing batch sizes, BatchNorm's running statistics included; networks it must not take run
 * Deeplearning4j's updater.
 */
class FusedMomentumStepTest {
  private static final int STEPS = 12;

  /** LeNet, and resnet-mini with BatchNorm's running statistics beside the trained parameters. */
  @ParameterizedTest
  @ValueSource(strings = {"lenet", "resnet-mini"})
  void shouldEqualDeeplearning4jsUpdaterToTheBit(String model) {
    final ComputationGraphConfiguration configuration =
        ModelZoo.configuration(
            job(
                Map.of(
                    Keys.MODEL_NAME.name(),
                    model,
                    Keys.OPTIMIZER.name(),
                    "momentum",
                    Keys.LEARNING_RATE.name(),
                    "0.05",
                    "lockstep.schedule.name",
                    "cosine",
                    "lockstep.schedule.warmup-steps",
                    "3")),
            STEPS);
    try (Replica fused = Replica.create(configuration.clone())) {
      assertTrue(fused.fusesOptimizerStep(), model + " with momentum takes the fused step");
      final ComputationGraph reference = referenceOf(configuration);
      assertArrayEquals(floats(reference.params()), floats(fused.network().params()));
      final Random random = new Random(5);
      for (int step = 0; step < STEPS; step++) {
        final int batch = 16 + random.nextInt(100);
        final float[] sum = new float[fused.parameterCount()];
        for (int i = 0; i < sum.length; i++) {
          sum[i] = (float) (random.nextGaussian() * batch * (i % 7 == 0 ? 1e-3 : 1));
        }
        fused.gradientBuffer().putBytes(0, bytes(sum), 0, sum.length * Float.BYTES);
        fused.applyUpdate(batch, 0);

        final INDArray gradient = reference.getGradientsViewArray();
        gradient.assign(org.nd4j.linalg.factory.Nd4j.create(sum, gradient.shape(), 'c'));
        reference
            .getUpdater()
            .update(
                gradient(reference),
                reference.getIterationCount(),
                reference.getEpochCount(),
                batch,
                LayerWorkspaceMgr.noWorkspaces());
        reference.params().subi(gradient.reshape(reference.params().shape()));
        reference.getConfiguration().setIterationCount(reference.getIterationCount() + 1);

        assertArrayEquals(
            floats(reference.params()),
            floats(fused.network().params()),
            "parameters, step " + step);
        assertArrayEquals(
            floats(reference.getUpdater().getStateViewArray()),
            floats(fused.network().getUpdater().getStateViewArray()),
            "velocity, step " + step);
        assertEquals(reference.getIterationCount(), fused.network().getIterationCount());
      }
    }
  }

  /**
   * On one thread or three, the same parameters, velocity and gradient norm, to the bit; and the
   * norm the step reports is the one it computes alone.
   */
  @Test
  void shouldGiveTheSameBitsOnAnyNumberOfThreads() {
    final ComputationGraphConfiguration configuration =
        ModelZoo.configuration(job(Map.of(Keys.OPTIMIZER.name(), "momentum")), 10);
    final ComputationGraph one = referenceOf(configuration);
    final ComputationGraph three = referenceOf(configuration);
    final Random random = new Random(3);
    final float[] sum = new float[(int) one.numParams()];
    try (FusedMomentumStep single = FusedMomentumStep.of(one, 1).orElseThrow();
        FusedMomentumStep threaded = FusedMomentumStep.of(three, 3).orElseThrow()) {
      for (int step = 0; step < 3; step++) {
        for (int i = 0; i < sum.length; i++) {
          sum[i] = (float) (random.nextGaussian() * 32);
        }
        final INDArray gradient = org.nd4j.linalg.factory.Nd4j.create(sum);
        one.getGradientsViewArray().assign(gradient.reshape(one.getGradientsViewArray().shape()));
        three
            .getGradientsViewArray()
            .assign(gradient.reshape(three.getGradientsViewArray().shape()));
        final double alone = single.gradientNorm();
        final double norm = single.step(32, step, 0, true);
        assertEquals(alone, norm, 0.0, "the norm the step reports");
        assertEquals(norm, threaded.step(32, step, 0, true), 0.0, "step " + step);
        assertArrayEquals(floats(one.params()), floats(three.params()), "step " + step);
        assertArrayEquals(
            floats(one.getUpdater().getStateViewArray()),
            floats(three.getUpdater().getStateViewArray()));
      }
    }
  }

  @Test
  void shouldLeaveRegularizedOrAdaptiveOptimizersToDeeplearning4j() {
    for (Map<String, String> settings :
        java.util.List.of(
            Map.of(Keys.OPTIMIZER.name(), "momentum", Keys.WEIGHT_DECAY.name(), "0.0001"),
            Map.of(Keys.OPTIMIZER.name(), "adam"),
            Map.of(Keys.OPTIMIZER.name(), "nesterov"))) {
      try (Replica replica = Replica.create(ModelZoo.configuration(job(settings), 10))) {
        assertFalse(replica.fusesOptimizerStep(), settings.toString());
      }
    }
  }

  private static JobConfig job(Map<String, String> settings) {
    final Map<String, String> all = new HashMap<>(settings);
    all.putIfAbsent(Keys.MODEL_NAME.name(), "lenet");
    return JobConfig.load(JobConfig.overrides(all));
  }

  /** The same network as a fresh replica's, stepped by Deeplearning4j's own updater. */
  private static ComputationGraph referenceOf(ComputationGraphConfiguration configuration) {
    final ComputationGraph network = new ComputationGraph(configuration.clone());
    network.init();
    ModelZoo.initialize(network, network.getConfiguration().getDefaultConfiguration().getSeed());
    network.getUpdater(true);
    return network;
  }

  /** The gradient views Deeplearning4j's updater is handed, as a replica hands them. */
  private static Gradient gradient(ComputationGraph network) {
    return Replica.viewsOf(network, new ArrayList<>(), new ArrayList<>(), new IdentityHashMap<>());
  }

  private static float[] floats(INDArray array) {
    return array.dup().data().asFloat();
  }

  private static byte[] bytes(float[] values) {
    final java.nio.ByteBuffer buffer =
        java.nio.ByteBuffer.allocate(values.length * Float.BYTES)
            .order(java.nio.ByteOrder.nativeOrder());
    buffer.asFloatBuffer().put(values);
    return buffer.array();
  }
}
