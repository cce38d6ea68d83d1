package io.lockstep.worker;

import io.lockstep.models.ModelZoo;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.zip.CRC32;
import org.agrona.concurrent.UnsafeBuffer;
import org.deeplearning4j.nn.api.Layer;
import org.deeplearning4j.nn.conf.MultiLayerConfiguration;
import org.deeplearning4j.nn.gradient.DefaultGradient;
import org.deeplearning4j.nn.gradient.Gradient;
import org.deeplearning4j.nn.multilayer.MultiLayerNetwork;
import org.deeplearning4j.nn.workspace.LayerWorkspaceMgr;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * One copy of the model and its optimizer, stepped the way Deeplearning4j's {@code fit()} steps it,
 * but with the gradient sum exchanged between the backward pass and the update: {@code
 * computeGradients} leaves the sum over this replica's samples in {@link #gradientBuffer()}, the
 * caller replaces it with the sum over the global batch, and {@code applyUpdate} divides by the
 * global batch size inside the updater, applies the optimizer and subtracts the step.
 */
public final class Replica {
  private final MultiLayerNetwork network;
  private final Gradient gradient;
  private final UnsafeBuffer gradientBuffer;
  private final String configurationJson;
  private double lastLoss;

  private Replica(MultiLayerNetwork network, String configurationJson) {
    this.network = network;
    this.configurationJson = configurationJson;
    final INDArray view = network.getGradientsViewArray();
    if (view.dataType() != DataType.FLOAT || view.length() > Integer.MAX_VALUE / Float.BYTES) {
      throw new IllegalStateException(
          "gradients must be float32 and below 2 GiB; got "
              + view.dataType()
              + " x "
              + view.length());
    }
    this.gradient = viewsOf(network);
    this.gradientBuffer =
        new UnsafeBuffer(
            view.data().address() + view.offset() * Float.BYTES, (int) view.length() * Float.BYTES);
  }

  /**
   * A fresh replica, its weights drawn from the configuration's seed by {@link
   * ModelZoo#initialize}.
   *
   * @param configuration the network
   * @return the replica
   */
  public static Replica create(MultiLayerConfiguration configuration) {
    final MultiLayerNetwork network = new MultiLayerNetwork(configuration);
    network.init();
    ModelZoo.initialize(network, network.getDefaultConfiguration().getSeed());
    network.getUpdater(true);
    return new Replica(network, configuration.toJson());
  }

  /**
   * A replica restored from a snapshot, bit for bit.
   *
   * @param state the snapshot
   * @return the replica
   */
  public static Replica restore(ModelState state) {
    final MultiLayerNetwork network =
        new MultiLayerNetwork(MultiLayerConfiguration.fromJson(state.configurationJson()));
    network.init(
        Nd4j.create(state.parameters(), new long[] {1, state.parameters().length}, 'c'), false);
    final INDArray updaterView = network.getUpdater(true).getStateViewArray();
    if (updaterView != null) {
      if (updaterView.length() != state.updaterState().length) {
        throw new IllegalStateException(
            "optimizer state of "
                + state.updaterState().length
                + " floats, the model needs "
                + updaterView.length());
      }
      updaterView.assign(Nd4j.create(state.updaterState(), updaterView.shape(), 'c'));
    }
    network.setIterationCount(state.iteration());
    network.setEpochCount(state.epoch());
    return new Replica(network, state.configurationJson());
  }

  private static Gradient viewsOf(MultiLayerNetwork network) {
    final Gradient gradient = new DefaultGradient(network.getGradientsViewArray());
    for (int i = 0; i < network.getnLayers(); i++) {
      final Layer layer = network.getLayer(i);
      if (layer.numParams() == 0) {
        continue;
      }
      final String prefix = i + "_";
      layer
          .conf()
          .getLayer()
          .initializer()
          .getGradientsFromFlattened(layer.conf(), layer.getGradientsViewArray())
          .forEach((name, view) -> gradient.setGradientFor(prefix + name, view));
    }
    return gradient;
  }

  /**
   * The flat gradient in native memory, as the parameter server reads and writes it.
   *
   * @return a buffer over the network's gradient view
   */
  public UnsafeBuffer gradientBuffer() {
    return gradientBuffer;
  }

  /**
   * @return the number of parameters
   */
  public int parameterCount() {
    return (int) network.numParams();
  }

  /**
   * @return the training loss of the last batch, mean over its samples
   */
  public double lastLoss() {
    return lastLoss;
  }

  /**
   * Runs forward and backward; leaves the gradient summed over the batch's samples in the buffer.
   * An empty batch leaves zeros.
   *
   * @param features {@code [n, inputs]}, or null for an empty batch
   * @param labels {@code [n, classes]}, or null for an empty batch
   */
  public void computeGradients(INDArray features, INDArray labels) {
    if (features == null) {
      network.getGradientsViewArray().assign(0);
      lastLoss = 0;
      return;
    }
    network.setInput(features);
    network.setLabels(labels);
    network.computeGradientAndScore();
    lastLoss = network.score();
    network.clearLayerMaskArrays();
  }

  /**
   * Applies one optimizer step from the gradient sum in the buffer.
   *
   * @param globalBatchSize the samples behind the sum; the updater divides by it
   */
  public void applyUpdate(int globalBatchSize) {
    network
        .getUpdater()
        .update(
            network,
            gradient,
            network.getIterationCount(),
            network.getEpochCount(),
            globalBatchSize,
            LayerWorkspaceMgr.noWorkspaces());
    final INDArray parameters = network.params();
    parameters.subi(network.getGradientsViewArray().reshape(parameters.shape()));
    network.setIterationCount(network.getIterationCount() + 1);
  }

  /** Marks the end of an epoch, for epoch-based schedules. */
  public void endEpoch() {
    network.incrementEpochCount();
  }

  /**
   * @return the network, for evaluation
   */
  public MultiLayerNetwork network() {
    return network;
  }

  /**
   * A snapshot of this replica.
   *
   * @return parameters, optimizer state and counters
   */
  public ModelState snapshot() {
    final INDArray updaterView = network.getUpdater(true).getStateViewArray();
    return new ModelState(
        configurationJson,
        network.params().toFloatVector(),
        updaterView == null ? new float[0] : updaterView.toFloatVector(),
        network.getIterationCount(),
        network.getEpochCount());
  }

  /**
   * CRC-32 of the parameters' bytes: equal on two replicas exactly when they hold the same bits.
   *
   * @return the checksum
   */
  public long parametersCrc() {
    final float[] values = network.params().toFloatVector();
    final ByteBuffer bytes =
        ByteBuffer.allocate(values.length * Float.BYTES).order(ByteOrder.LITTLE_ENDIAN);
    bytes.asFloatBuffer().put(values);
    final CRC32 crc = new CRC32();
    crc.update(bytes);
    return crc.getValue();
  }
}
