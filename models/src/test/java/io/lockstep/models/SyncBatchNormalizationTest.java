package io.lockstep.models;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.lockstep.conf.JobConfig;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * SyncBatchNorm against Deeplearning4j's BatchNorm: alone it is the same layer; split over replicas
 * whose sums an in-memory reducer adds, the gradient sum is the whole batch's.
 */
@Timeout(120)
class SyncBatchNormalizationTest {
  private static final int BATCH = 12;

  private static ComputationGraphConfiguration resnet(boolean sync) {
    final JobConfig job =
        JobConfig.load()
            .with(
                Map.of(
                    "lockstep.model.name",
                    "resnet-mini",
                    "lockstep.batchnorm.sync",
                    Boolean.toString(sync)));
    return ModelZoo.configuration(job, 10);
  }

  private static ComputationGraph network(ComputationGraphConfiguration configuration) {
    final ComputationGraph network = new ComputationGraph(configuration);
    network.init();
    ModelZoo.initialize(network, 5);
    return network;
  }

  private static INDArray[] batch(int samples) {
    final SplittableRandom random = new SplittableRandom(3);
    final float[] pixels = new float[samples * 784];
    for (int i = 0; i < pixels.length; i++) {
      pixels[i] = (float) random.nextGaussian();
    }
    final INDArray labels = Nd4j.zeros(samples, 10);
    for (int s = 0; s < samples; s++) {
      labels.putScalar(s, random.nextInt(10), 1);
    }
    return new INDArray[] {Nd4j.create(pixels, new long[] {samples, 1, 28, 28}, 'c'), labels};
  }

  private static float[] gradient(ComputationGraph network, INDArray features, INDArray labels) {
    network.setInputs(features);
    network.setLabels(labels);
    network.computeGradientAndScore();
    return network.getGradientsViewArray().toFloatVector();
  }

  private static double relativeDifference(float[] ours, float[] theirs) {
    double largest = 0;
    double scale = 0;
    for (int i = 0; i < ours.length; i++) {
      largest = Math.max(largest, Math.abs(ours[i] - theirs[i]));
      scale = Math.max(scale, Math.abs(theirs[i]));
    }
    return largest / scale;
  }

  @Test
  void shouldKeepItsLayerTypeThroughJson() {
    final String json = resnet(true).toJson();
    assertTrue(json.contains(SyncBatchNormalization.class.getName()), "class in the JSON");
    final ComputationGraph restored = network(ComputationGraphConfiguration.fromJson(json));
    assertTrue(restored.getLayer("stem_bn") instanceof SyncBatchNormLayer);
  }

  @Test
  void shouldBeDeeplearning4jsBatchNormWithoutAReducer() {
    final ComputationGraph plain = network(resnet(false));
    final ComputationGraph sync = network(resnet(true));
    assertArrayEquals(plain.params().toFloatVector(), sync.params().toFloatVector());
    final INDArray[] data = batch(BATCH);
    final float[] expected = gradient(plain, data[0], data[1]);
    final float[] actual = gradient(sync, data[0], data[1]);
    assertEquals(plain.score(), sync.score(), 1e-6 * Math.abs(plain.score()));
    final double difference = relativeDifference(actual, expected);
    assertTrue(difference <= 1e-5, "gradient differs by " + difference + " of its largest value");
    assertArrayEquals(
        plain.outputSingle(false, data[0]).data().asFloat(),
        sync.outputSingle(false, data[0]).data().asFloat(),
        0f,
        "inference uses the running statistics, as BatchNorm does");
  }

  @Test
  void shouldGiveTheWholeBatchsGradientWhenSplitOverReplicas() throws Exception {
    final ComputationGraph plain = network(resnet(false));
    final INDArray[] data = batch(BATCH);
    final float[] expected = gradient(plain, data[0], data[1]);
    final int replicas = 3;
    final InMemoryReducer reducer = new InMemoryReducer(replicas, BATCH);
    final ExecutorService threads = Executors.newFixedThreadPool(replicas);
    try {
      final List<Future<float[]>> sums = new ArrayList<>();
      for (int r = 0; r < replicas; r++) {
        final int from = r * BATCH / replicas;
        final int to = (r + 1) * BATCH / replicas;
        final int rank = r;
        sums.add(
            threads.submit(
                () -> {
                  final ComputationGraph replica = network(resnet(true));
                  for (var layer : replica.getLayers()) {
                    if (layer instanceof SyncBatchNormLayer sync) {
                      sync.reducer(reducer.forRank(rank));
                    }
                  }
                  return gradient(
                      replica,
                      data[0].get(org.nd4j.linalg.indexing.NDArrayIndex.interval(from, to)),
                      data[1].get(org.nd4j.linalg.indexing.NDArrayIndex.interval(from, to)));
                }));
      }
      final float[] total = new float[expected.length];
      for (Future<float[]> sum : sums) {
        final float[] part = sum.get();
        for (int i = 0; i < total.length; i++) {
          total[i] += part[i];
        }
      }
      // running statistics: every replica computes the global batch's update; count it once
      final float[] first = sums.get(0).get();
      final ComputationGraph layout = network(resnet(true));
      for (var layer : layout.getLayers()) {
        if (layer instanceof SyncBatchNormLayer sync) {
          final int offset = (int) (sync.params().offset() - layout.params().offset());
          for (int i = offset + 2 * sync.channels(); i < offset + 4 * sync.channels(); i++) {
            total[i] = first[i];
          }
        }
      }
      final double difference = relativeDifference(total, expected);
      assertTrue(difference <= 1e-5, "gradient differs by " + difference + " of its largest value");
    } finally {
      threads.shutdownNow();
    }
  }

  /** Adds the replicas' vectors in rank order once all have arrived, on a barrier. */
  private static final class InMemoryReducer {
    private final float[][] contributions;
    private final CyclicBarrier arrived;
    private final CyclicBarrier read;
    private final int globalBatch;
    private float[] sum;

    InMemoryReducer(int replicas, int globalBatch) {
      this.contributions = new float[replicas][];
      this.globalBatch = globalBatch;
      this.arrived = new CyclicBarrier(replicas, this::add);
      this.read = new CyclicBarrier(replicas);
    }

    private void add() {
      sum = contributions[0].clone();
      for (int r = 1; r < contributions.length; r++) {
        for (int i = 0; i < sum.length; i++) {
          sum[i] += contributions[r][i];
        }
      }
    }

    StatisticsReducer forRank(int rank) {
      return new StatisticsReducer() {
        @Override
        public void sum(float[] values) {
          try {
            contributions[rank] = values.clone();
            arrived.await();
            System.arraycopy(sum, 0, values, 0, values.length);
            read.await();
          } catch (Exception e) {
            throw new IllegalStateException(e);
          }
        }

        @Override
        public int globalBatchSize() {
          return globalBatch;
        }
      };
    }
  }
}
