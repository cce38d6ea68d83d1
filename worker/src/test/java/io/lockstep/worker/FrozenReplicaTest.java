package io.lockstep.worker;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.lockstep.conf.JobConfig;
import io.lockstep.conf.Keys;
import io.lockstep.models.ModelZoo;
import io.lockstep.worker.input.RandomBatch;
import java.util.Arrays;
import java.util.Map;
import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.junit.jupiter.api.Test;

/** A replica whose first layers are frozen (transfer learning) trains only the rest. */
class FrozenReplicaTest {
  private static final int FROZEN_FLOATS = 20 * 25 + 20 + 50 * 20 * 25 + 50; // conv1 and conv2

  private static ComputationGraphConfiguration lenet(int freeze, String optimizer, double decay) {
    return ModelZoo.configuration(
        JobConfig.load()
            .with(
                Map.of(
                    Keys.MODEL_PRETRAINED.name(),
                    "fashion.zip",
                    Keys.MODEL_FREEZE_LAYERS.name(),
                    Integer.toString(freeze),
                    Keys.OPTIMIZER.name(),
                    optimizer,
                    Keys.WEIGHT_DECAY.name(),
                    Double.toString(decay))),
        10);
  }

  @Test
  void frozenLayersKeepTheirBitsWhateverTheBufferHeld() {
    for (String optimizer : new String[] {"momentum", "adam"}) {
      try (Replica replica = Replica.create(lenet(2, optimizer, 1e-3))) {
        assertEquals(431_080 - FROZEN_FLOATS, replica.trainableParameterCount());
        assertTrue(replica.engine().startsWith("deeplearning4j"), replica.engine());
        final float[] before = replica.snapshot().parameters();
        final RandomBatch batch = RandomBatch.of(ModelZoo.spec("lenet"), 8, 3);
        for (int step = 0; step < 3; step++) {
          // what an exchange or a local-SGD average may leave in the buffer
          replica
              .gradientBuffer()
              .setMemory(0, replica.parameterCount() * Float.BYTES, (byte) 0x3f);
          replica.computeGradients(batch.features(), batch.labels(), 1);
          for (int i = 0; i < FROZEN_FLOATS; i++) {
            assertEquals(0f, replica.gradientBuffer().getFloat(i * Float.BYTES), "float " + i);
          }
          replica.applyUpdate(8, 0);
        }
        final float[] after = replica.snapshot().parameters();
        assertArrayEquals(
            Arrays.copyOf(before, FROZEN_FLOATS), Arrays.copyOf(after, FROZEN_FLOATS), optimizer);
        assertFalse(
            Arrays.equals(
                Arrays.copyOfRange(before, FROZEN_FLOATS, before.length),
                Arrays.copyOfRange(after, FROZEN_FLOATS, after.length)),
            optimizer + ": the layers above the frozen ones train");
      }
    }
  }

  @Test
  void aFrozenReplicaRestoresFromItsSnapshot() {
    try (Replica replica = Replica.create(lenet(1, "momentum", 0))) {
      final RandomBatch batch = RandomBatch.of(ModelZoo.spec("lenet"), 4, 5);
      replica.computeGradients(batch.features(), batch.labels(), 1);
      replica.applyUpdate(4, 0);
      try (Replica copy = Replica.restore(replica.snapshot())) {
        assertEquals(replica.parametersCrc(), copy.parametersCrc());
        assertEquals(replica.trainableParameterCount(), copy.trainableParameterCount());
      }
    }
  }
}
