package io.lockstep.worker;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.lockstep.conf.ComputeEngine;
import io.lockstep.conf.ConfigurationException;
import io.lockstep.conf.JobConfig;
import io.lockstep.conf.Precision;
import io.lockstep.models.ModelZoo;
import io.lockstep.models.SampleDropout;
import io.lockstep.worker.engine.CompiledNetwork;
import java.nio.ByteOrder;
import java.util.Map;
import org.agrona.concurrent.UnsafeBuffer;
import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/** A replica's exchanged step against Deeplearning4j's own {@code fit()} on the whole batch. */
class ReplicaTest {
  private static final int BATCH = 12;
  private static final int STEPS = 4;

  private static ComputationGraphConfiguration lenet(String optimizer) {
    return ModelZoo.configuration(
        JobConfig.load()
            .with(
                Map.of(
                    "lockstep.optimizer.name",
                    optimizer,
                    "lockstep.optimizer.weight-decay",
                    optimizer.equals("sgd") ? "0" : "1e-4")),
        10);
  }

  private static INDArray features(int step, int from, int n) {
    Nd4j.getRandom().setSeed(1000 + step);
    return Nd4j.rand(BATCH, 1, 28, 28)
        .get(org.nd4j.linalg.indexing.NDArrayIndex.interval(from, from + n));
  }

  private static INDArray labels(int step, int from, int n) {
    final INDArray y = Nd4j.zeros(BATCH, 10);
    for (int i = 0; i < BATCH; i++) {
      y.putScalar(i, (i * 7 + step) % 10, 1f);
    }
    return y.get(org.nd4j.linalg.indexing.NDArrayIndex.interval(from, from + n)).dup();
  }

  /**
   * What the backward pass reports final is final: each reported range already holds its last bits,
   * running statistics scaled by the slice's share, and the whole gradient equals an unobserved
   * replica's.
   */
  @ParameterizedTest
  @ValueSource(strings = {"lenet", "resnet-mini"})
  void shouldReportTheGradientFinalFromTheLastLayerDown(String model) {
    final Replica observed =
        Replica.create(
            ModelZoo.configuration(
                JobConfig.load().with(Map.of("lockstep.model.name", model)), 10));
    final Replica plain = Replica.restore(observed.snapshot());
    final int n = observed.parameterCount();
    final java.util.List<Integer> reported = new java.util.ArrayList<>();
    final java.util.List<float[]> seen = new java.util.ArrayList<>();
    observed.reportBackward(
        first -> {
          reported.add(first);
          seen.add(floats(observed.gradientBuffer(), first, n));
        });
    for (int step = 0; step < 2; step++) {
      reported.clear();
      seen.clear();
      observed.computeGradients(features(step, 0, BATCH).dup(), labels(step, 0, BATCH), 0.25);
      plain.computeGradients(features(step, 0, BATCH).dup(), labels(step, 0, BATCH), 0.25);
      final float[] finalGradient = floats(observed.gradientBuffer(), 0, n);
      org.junit.jupiter.api.Assertions.assertArrayEquals(
          floats(plain.gradientBuffer(), 0, n), finalGradient, model);
      assertTrue(reported.size() >= 2, model + " reported " + reported);
      assertEquals(0, (int) reported.get(reported.size() - 1), "the first layer ends the pass");
      for (int i = 0; i < reported.size(); i++) {
        assertTrue(i == 0 || reported.get(i) < reported.get(i - 1), "decreasing: " + reported);
        org.junit.jupiter.api.Assertions.assertArrayEquals(
            java.util.Arrays.copyOfRange(finalGradient, reported.get(i), n),
            seen.get(i),
            model + ": range from " + reported.get(i) + " changed after it was reported");
      }
    }
  }

  private static float[] floats(UnsafeBuffer buffer, int from, int to) {
    final float[] values = new float[to - from];
    for (int i = from; i < to; i++) {
      values[i - from] = buffer.getFloat(i * Float.BYTES, ByteOrder.LITTLE_ENDIAN);
    }
    return values;
  }

  @org.junit.jupiter.api.Test
  void shouldClipTheGlobalNormOfTheMeanGradientAsPyTorchDoes() {
    final Replica clipped = Replica.create(lenet("sgd"));
    final Replica free = Replica.restore(clipped.snapshot());
    clipped.computeGradients(features(0, 0, BATCH).dup(), labels(0, 0, BATCH), 1);
    free.computeGradients(features(0, 0, BATCH).dup(), labels(0, 0, BATCH), 1);
    final INDArray before = clipped.network().params().dup();
    free.applyUpdate(BATCH, 0);
    final double norm = free.lastGradientNorm();
    final double limit = norm / 4;
    clipped.applyUpdate(BATCH, limit);
    assertEquals(norm, clipped.lastGradientNorm(), 1e-6 * norm);
    // plain SGD, no weight decay: the step is lr x the clipped mean gradient
    final INDArray freeStep = before.sub(free.network().params());
    final INDArray clippedStep = before.sub(clipped.network().params());
    final double ratio =
        clippedStep.norm2Number().doubleValue() / freeStep.norm2Number().doubleValue();
    assertEquals(limit / (norm + 1e-6), ratio, 1e-4);
  }

  @ParameterizedTest
  @ValueSource(strings = {"momentum", "adam"})
  void shouldRestoreOptimizerStateExactly(String optimizer) {
    final Replica original = Replica.create(lenet(optimizer));
    for (int step = 0; step < 2; step++) {
      original.computeGradients(features(step, 0, BATCH).dup(), labels(step, 0, BATCH), 1);
      original.applyUpdate(BATCH, 0);
    }
    final Replica restored = Replica.restore(original.snapshot());
    original.computeGradients(features(2, 0, BATCH).dup(), labels(2, 0, BATCH), 1);
    restored.computeGradients(features(2, 0, BATCH).dup(), labels(2, 0, BATCH), 1);
    original.applyUpdate(BATCH, 0);
    restored.applyUpdate(BATCH, 0);
    assertEquals(original.parametersCrc(), restored.parametersCrc());
  }

  /** A stage's result holds what a snapshot holds, in the same two arrays stage after stage. */
  @org.junit.jupiter.api.Test
  void shouldSnapshotAResultIntoTheSameArraysEachTime() {
    final Replica replica = Replica.create(lenet("adam"));
    final ModelState first = replica.resultSnapshot();
    replica.computeGradients(features(0, 0, BATCH).dup(), labels(0, 0, BATCH), 1);
    replica.applyUpdate(BATCH, 0);
    final ModelState second = replica.resultSnapshot();
    final ModelState copy = replica.snapshot();
    org.junit.jupiter.api.Assertions.assertSame(first.parameters(), second.parameters());
    org.junit.jupiter.api.Assertions.assertSame(first.updaterState(), second.updaterState());
    org.junit.jupiter.api.Assertions.assertArrayEquals(copy.parameters(), second.parameters());
    org.junit.jupiter.api.Assertions.assertArrayEquals(copy.updaterState(), second.updaterState());
    assertEquals(copy.fingerprint(), second.fingerprint());
    assertEquals(replica.fingerprint(), second.fingerprint());
  }

  @org.junit.jupiter.api.Test
  void shouldStartEveryReplicaOfASeedFromTheSameWeights() {
    final Replica a = Replica.create(lenet("sgd"));
    final Replica b = Replica.create(lenet("sgd"));
    assertEquals(a.parametersCrc(), b.parametersCrc());
    final double bound = 1 / Math.sqrt(25);
    final INDArray conv1 = a.network().getLayer("conv1").getParam("W");
    assertTrue(
        conv1.amaxNumber().doubleValue() <= bound
            && conv1.amaxNumber().doubleValue() > bound * 0.9);
  }

  @org.junit.jupiter.api.Test
  void shouldLeaveZerosForAnEmptySlice() {
    final Replica replica = Replica.create(lenet("sgd"));
    replica.computeGradients(features(0, 0, BATCH).dup(), labels(0, 0, BATCH), 1);
    replica.computeGradients(null, null, 1);
    final UnsafeBuffer g = replica.gradientBuffer();
    for (int i = 0; i < g.capacity(); i += Float.BYTES * 101) {
      assertEquals(0f, g.getFloat(i, ByteOrder.LITTLE_ENDIAN));
    }
  }

  /**
   * Micro-batches: the buffer holds the parts' gradient sums added in order, to the bit, on the
   * engine and on Deeplearning4j's layers alike, running statistics weighted per part; the loss is
   * the batch's mean; the backward pass reports nothing while the parts run.
   */
  @ParameterizedTest
  @ValueSource(
      strings = {
        "lenet onednn",
        "lenet deeplearning4j",
        "resnet-mini deeplearning4j",
        "lenet onednn bf16",
        "resnet-mini onednn bf16"
      })
  void shouldAddTheMicroBatchesGradientSumsInOrder(String modelAndEngine) {
    final String[] words = modelAndEngine.split(" ");
    final ComputeEngine engine = ComputeEngine.valueOf(words[1].toUpperCase(java.util.Locale.ROOT));
    final Precision precision = words.length > 2 ? Precision.BF16 : Precision.FP32;
    if (precision == Precision.BF16) {
      assumeTrue(CompiledNetwork.computesBf16(), "no bfloat16 on this CPU: refused here");
    }
    final ComputationGraphConfiguration configuration =
        ModelZoo.configuration(JobConfig.load().with(Map.of("lockstep.model.name", words[0])), 10);
    final Replica accumulating = Replica.create(configuration.clone(), engine, precision);
    final Replica parts = Replica.restore(accumulating.snapshot(), engine, precision);
    final int n = accumulating.parameterCount();
    final java.util.List<Integer> reported = new java.util.ArrayList<>();
    accumulating.reportBackward(reported::add);
    final double[] shares = {0.5, 0.3, 0.2};
    accumulating.computeGradients(
        features(0, 0, BATCH).dup(),
        labels(0, 0, BATCH),
        null,
        new int[] {4, 4, 4},
        shares,
        new int[] {3});
    assertEquals(java.util.List.of(), reported, "nothing is final before the last part");
    final float[] sum = new float[n];
    double loss = 0;
    for (int part = 0; part < 3; part++) {
      parts.computeGradients(features(0, 4 * part, 4).dup(), labels(0, 4 * part, 4), shares[part]);
      final float[] gradient = floats(parts.gradientBuffer(), 0, n);
      for (int i = 0; i < n; i++) {
        sum[i] = part == 0 ? gradient[i] : sum[i] + gradient[i];
      }
      loss += parts.lastLoss() * 4 / BATCH;
    }
    org.junit.jupiter.api.Assertions.assertArrayEquals(
        sum, floats(accumulating.gradientBuffer(), 0, n), 0f, modelAndEngine);
    assertEquals(loss, accumulating.lastLoss(), 1e-12);
    // the next whole batch reports its layers again
    accumulating.computeGradients(features(1, 0, BATCH).dup(), labels(1, 0, BATCH), 0.25);
    assertTrue(!reported.isEmpty(), "a pass in one part reports its layers");
    accumulating.close();
    parts.close();
  }

  /**
   * bfloat16 is refused where it cannot run, in one message naming the setting and the fix: on
   * Deeplearning4j's layers, and for a model the oneDNN engine does not compute (where the engine
   * would otherwise fall back to Deeplearning4j's float32 layers).
   */
  @org.junit.jupiter.api.Test
  void shouldRefuseBfloat16WhereTheEngineDoesNotCompute() {
    final ComputationGraphConfiguration lenet =
        ModelZoo.configuration(JobConfig.load().with(Map.of("lockstep.model.name", "lenet")), 10);
    final String offTheEngine =
        assertThrows(
                ConfigurationException.class,
                () -> Replica.create(lenet, ComputeEngine.DEEPLEARNING4J, Precision.BF16))
            .getMessage();
    assertTrue(
        offTheEngine.startsWith(
            "lockstep.compute.precision=bf16 needs the oneDNN engine; "
                + "lockstep.worker.engine=deeplearning4j computes float32 only"),
        offTheEngine);
    // SyncBatchNorm's statistics round is Deeplearning4j's layer's
    final ComputationGraphConfiguration synced =
        ModelZoo.configuration(
            JobConfig.load()
                .with(
                    Map.of(
                        "lockstep.model.name", "resnet-mini", "lockstep.batchnorm.sync", "true")),
            10);
    final String notComputed =
        assertThrows(
                ConfigurationException.class,
                () -> Replica.create(synced, ComputeEngine.AUTO, Precision.BF16))
            .getMessage();
    assertTrue(
        notComputed.startsWith("lockstep.compute.precision=bf16 needs ")
            && notComputed.endsWith(
                "fp32" + (CompiledNetwork.computesBf16() ? "" : " on this host")),
        notComputed);
    if (CompiledNetwork.computesBf16()) {
      assertTrue(notComputed.contains("the oneDNN engine, which cannot compute this model"));
    }
  }

  /**
   * Dropout follows the samples: a batch in micro-batches, each with its samples' keys, leaves the
   * bits of the parts computed apart, on the engine and on Deeplearning4j's layers alike; the same
   * keys give the same bits, other keys another gradient, and a step without keys is refused.
   */
  @ParameterizedTest
  @ValueSource(strings = {"onednn", "deeplearning4j"})
  void shouldDropTheSameInputsOfASampleWhereverItIsComputed(String engineName) {
    final ComputeEngine engine =
        ComputeEngine.valueOf(engineName.toUpperCase(java.util.Locale.ROOT));
    final ComputationGraphConfiguration configuration = lenet("sgd");
    int dropped = 0;
    for (Map.Entry<String, org.deeplearning4j.nn.conf.graph.GraphVertex> vertex :
        configuration.getVertices().entrySet()) {
      if (vertex.getValue() instanceof org.deeplearning4j.nn.conf.graph.LayerVertex layer
          && layer.getLayerConf().getLayer()
              instanceof org.deeplearning4j.nn.conf.layers.FeedForwardLayer dense
          && !(dense instanceof org.deeplearning4j.nn.conf.layers.ConvolutionLayer)) {
        dense.setIDropout(new SampleDropout(0.5, vertex.getKey()));
        dropped++;
      }
    }
    assertEquals(2, dropped, "lenet's dense and output layers");
    final Replica accumulating = Replica.create(configuration.clone(), engine);
    assertEquals(engineName, accumulating.engine());
    final Replica parts = Replica.restore(accumulating.snapshot(), engine);
    final int n = accumulating.parameterCount();
    final long[] keys = new long[BATCH];
    for (int i = 0; i < BATCH; i++) {
      keys[i] = SampleDropout.sampleKey(5, 1, 100 + i);
    }
    final double[] shares = {0.5, 0.3, 0.2};
    accumulating.computeGradients(
        features(0, 0, BATCH).dup(),
        labels(0, 0, BATCH),
        keys,
        new int[] {4, 4, 4},
        shares,
        new int[] {3});
    final float[] whole = floats(accumulating.gradientBuffer(), 0, n);
    final float[] sum = new float[n];
    for (int part = 0; part < 3; part++) {
      parts.computeGradients(
          features(0, 4 * part, 4).dup(),
          labels(0, 4 * part, 4),
          java.util.Arrays.copyOfRange(keys, 4 * part, 4 * part + 4),
          shares[part]);
      final float[] gradient = floats(parts.gradientBuffer(), 0, n);
      for (int i = 0; i < n; i++) {
        sum[i] = part == 0 ? gradient[i] : sum[i] + gradient[i];
      }
    }
    org.junit.jupiter.api.Assertions.assertArrayEquals(sum, whole, 0f, engineName);
    // a step on the same samples drops the same inputs; on other samples, others
    accumulating.computeGradients(features(0, 0, BATCH).dup(), labels(0, 0, BATCH), keys, 1);
    final float[] again = floats(accumulating.gradientBuffer(), 0, n);
    final long[] others = java.util.Arrays.stream(keys).map(key -> key ^ 1).toArray();
    accumulating.computeGradients(features(0, 0, BATCH).dup(), labels(0, 0, BATCH), others, 1);
    final float[] other = floats(accumulating.gradientBuffer(), 0, n);
    parts.computeGradients(features(0, 0, BATCH).dup(), labels(0, 0, BATCH), keys, 1);
    org.junit.jupiter.api.Assertions.assertArrayEquals(
        floats(parts.gradientBuffer(), 0, n), again, 0f, "same keys, same bits");
    assertTrue(!java.util.Arrays.equals(again, other), "other samples drop other inputs");
    final IllegalStateException refused =
        org.junit.jupiter.api.Assertions.assertThrows(
            IllegalStateException.class,
            () ->
                accumulating.computeGradients(features(0, 0, BATCH).dup(), labels(0, 0, BATCH), 1));
    assertTrue(refused.getMessage().contains("dropout before layer"), refused.getMessage());
    accumulating.close();
    parts.close();
  }
}
