package io.lockstep.worker;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.lockstep.conf.ComputeEngine;
import io.lockstep.conf.JobConfig;
import io.lockstep.conf.Precision;
import io.lockstep.models.ModelZoo;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Map;
import java.util.zip.CRC32;
import org.junit.jupiter.api.Test;

/**
 * A replica's fingerprint, read in place from native memory, against its snapshot's, read from Java
 * arrays: equal for the same bits, different when any part of the state differs.
 */
class FingerprintTest {
  private static Replica adamLenet() {
    return Replica.create(
        ModelZoo.configuration(
            JobConfig.load().with(Map.of("lockstep.optimizer.name", "adam")), 10));
  }

  @Test
  void shouldMatchTheSnapshotsFingerprintAndTheArraysCrc() {
    try (Replica replica = adamLenet()) {
      final ModelState state = replica.snapshot();
      assertTrue(state.updaterState().length > 0, "Adam keeps optimizer state");
      assertEquals(state.fingerprint(), replica.fingerprint());
      // the checksum of the parameters' little-endian bytes, written out plainly
      final ByteBuffer bytes =
          ByteBuffer.allocate(state.parameters().length * Float.BYTES)
              .order(ByteOrder.LITTLE_ENDIAN);
      bytes.asFloatBuffer().put(state.parameters());
      final CRC32 crc = new CRC32();
      crc.update(bytes);
      assertEquals(crc.getValue(), replica.parametersCrc());
      assertEquals(crc.getValue(), Replica.crc32(state.parameters()));
      try (Replica restored = Replica.restore(state, ComputeEngine.DEEPLEARNING4J)) {
        assertEquals(state.fingerprint(), restored.fingerprint());
      }
    }
  }

  @Test
  void shouldDifferWhenAnyPartOfTheStateDiffers() {
    try (Replica replica = adamLenet()) {
      final ModelState state = replica.snapshot();
      final String json = state.configurationJson();
      final float[] parameters = state.parameters();
      final float[] updater = state.updaterState();
      final int iteration = state.iteration();
      final int epoch = state.epoch();
      final long original = state.fingerprint();
      assertEquals(
          original,
          new ModelState(json, parameters.clone(), updater.clone(), iteration, epoch).fingerprint(),
          "a copy of the same bits");
      final float[] oneParameter = parameters.clone();
      oneParameter[oneParameter.length - 1] = Math.nextUp(oneParameter[oneParameter.length - 1]);
      final float[] oneMoment = updater.clone();
      oneMoment[oneMoment.length / 2] = Math.nextUp(oneMoment[oneMoment.length / 2]);
      assertNotEquals(
          original, new ModelState(json, oneParameter, updater, iteration, epoch).fingerprint());
      assertNotEquals(
          original, new ModelState(json, parameters, oneMoment, iteration, epoch).fingerprint());
      assertNotEquals(
          original, new ModelState(json, parameters, updater, iteration + 1, epoch).fingerprint());
      assertNotEquals(
          original, new ModelState(json, parameters, updater, iteration, epoch + 1).fingerprint());
      assertNotEquals(
          original,
          new ModelState(json + " ", parameters, updater, iteration, epoch).fingerprint());
      // the live replica follows its memory: one changed bit in place changes its fingerprint
      assertTrue(replica.holds(original, ComputeEngine.AUTO, Precision.FP32));
      replica.network().params().putScalar(0, Math.nextUp(parameters[0]));
      assertNotEquals(original, replica.fingerprint());
      assertFalse(replica.holds(original, ComputeEngine.AUTO, Precision.FP32));
    }
  }
}
