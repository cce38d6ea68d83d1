package io.lockstep.worker;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.lockstep.conf.JobConfig;
import io.lockstep.models.ModelZoo;
import java.nio.ByteOrder;
import java.util.Map;
import org.agrona.concurrent.UnsafeBuffer;
import org.deeplearning4j.nn.conf.MultiLayerConfiguration;
import org.deeplearning4j.nn.multilayer.MultiLayerNetwork;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/** A replica's exchanged step against Deeplearning4j's own {@code fit()} on the whole batch. */
class ReplicaTest {
  private static final int BATCH = 12;
  private static final int STEPS = 4;

  private static MultiLayerConfiguration lenet(String optimizer) {
    return ModelZoo.configuration(
        JobConfig.load()
            .with(
                Map.of(
                    "lockstep.optimizer.name",
                    optimizer,
                    "lockstep.optimizer.weight-decay",
                    "1e-4")));
  }

  private static INDArray features(int step, int from, int n) {
    Nd4j.getRandom().setSeed(1000 + step);
    return Nd4j.rand(BATCH, 784)
        .get(org.nd4j.linalg.indexing.NDArrayIndex.interval(from, from + n));
  }

  private static INDArray labels(int step, int from, int n) {
    final INDArray y = Nd4j.zeros(BATCH, 10);
    for (int i = 0; i < BATCH; i++) {
      y.putScalar(i, (i * 7 + step) % 10, 1f);
    }
    return y.get(org.nd4j.linalg.indexing.NDArrayIndex.interval(from, from + n)).dup();
  }

  private static double relativeDifference(INDArray a, INDArray b) {
    return a.sub(b).amaxNumber().doubleValue() / b.amaxNumber().doubleValue();
  }

  @ParameterizedTest
  @ValueSource(strings = {"sgd", "momentum", "nesterov"})
  void shouldMatchFitOnTheWholeBatchWhenSlicesAreSummed(String optimizer) {
    final MultiLayerConfiguration configuration = lenet(optimizer);
    final Replica first = Replica.create(configuration.clone());
    final MultiLayerNetwork reference = new MultiLayerNetwork(configuration.clone());
    reference.init(first.network().params().dup(), false);
    final Replica second = Replica.restore(first.snapshot());
    assertEquals(first.parametersCrc(), second.parametersCrc());
    assertEquals(
        0.0,
        relativeDifference(first.network().params(), reference.params()),
        "same initial parameters");
    final int split = 5; // uneven slices: 5 and 7 samples
    for (int step = 0; step < STEPS; step++) {
      reference.fit(features(step, 0, BATCH).dup(), labels(step, 0, BATCH));
      first.computeGradients(features(step, 0, split).dup(), labels(step, 0, split));
      second.computeGradients(
          features(step, split, BATCH - split).dup(), labels(step, split, BATCH - split));
      addInto(first.gradientBuffer(), second.gradientBuffer());
      second
          .gradientBuffer()
          .putBytes(0, first.gradientBuffer(), 0, first.gradientBuffer().capacity());
      first.applyUpdate(BATCH);
      second.applyUpdate(BATCH);
    }
    assertEquals(first.parametersCrc(), second.parametersCrc(), "replicas must stay bit-identical");
    final INDArray ours = first.network().params();
    final INDArray theirs = reference.params();
    final double difference = relativeDifference(ours, theirs);
    assertTrue(difference <= 1e-5, optimizer + ": relative difference " + difference);
    assertEquals(STEPS, first.network().getIterationCount());
  }

  @ParameterizedTest
  @ValueSource(strings = {"momentum", "adam"})
  void shouldRestoreOptimizerStateExactly(String optimizer) {
    final Replica original = Replica.create(lenet(optimizer));
    for (int step = 0; step < 2; step++) {
      original.computeGradients(features(step, 0, BATCH).dup(), labels(step, 0, BATCH));
      original.applyUpdate(BATCH);
    }
    final Replica restored = Replica.restore(original.snapshot());
    original.computeGradients(features(2, 0, BATCH).dup(), labels(2, 0, BATCH));
    restored.computeGradients(features(2, 0, BATCH).dup(), labels(2, 0, BATCH));
    original.applyUpdate(BATCH);
    restored.applyUpdate(BATCH);
    assertEquals(original.parametersCrc(), restored.parametersCrc());
  }

  @org.junit.jupiter.api.Test
  void shouldStartEveryReplicaOfASeedFromTheSameWeights() {
    final Replica a = Replica.create(lenet("sgd"));
    final Replica b = Replica.create(lenet("sgd"));
    assertEquals(a.parametersCrc(), b.parametersCrc());
    final double bound = 1 / Math.sqrt(25);
    final INDArray conv1 = a.network().getLayer(0).getParam("W");
    assertTrue(
        conv1.amaxNumber().doubleValue() <= bound
            && conv1.amaxNumber().doubleValue() > bound * 0.9);
  }

  @org.junit.jupiter.api.Test
  void shouldLeaveZerosForAnEmptySlice() {
    final Replica replica = Replica.create(lenet("sgd"));
    replica.computeGradients(features(0, 0, BATCH).dup(), labels(0, 0, BATCH));
    replica.computeGradients(null, null);
    final UnsafeBuffer g = replica.gradientBuffer();
    for (int i = 0; i < g.capacity(); i += Float.BYTES * 101) {
      assertEquals(0f, g.getFloat(i, ByteOrder.LITTLE_ENDIAN));
    }
  }

  private static void addInto(UnsafeBuffer target, UnsafeBuffer other) {
    for (int i = 0; i < target.capacity(); i += Float.BYTES) {
      target.putFloat(
          i,
          target.getFloat(i, ByteOrder.LITTLE_ENDIAN) + other.getFloat(i, ByteOrder.LITTLE_ENDIAN),
          ByteOrder.LITTLE_ENDIAN);
    }
  }
}
