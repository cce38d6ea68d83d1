package io.lockstep.worker;

import io.lockstep.models.Momentum;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import org.bytedeco.javacpp.BytePointer;
import org.deeplearning4j.nn.api.Layer;
import org.deeplearning4j.nn.api.Updater;
import org.deeplearning4j.nn.conf.GradientNormalization;
import org.deeplearning4j.nn.conf.layers.BaseLayer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.nn.updater.BaseMultiLayerUpdater;
import org.deeplearning4j.nn.updater.UpdaterBlock;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.learning.config.NoOp;

/**
 * The optimizer step of a network whose every parameter {@link Momentum} trains without
 * regularization or gradient normalization, in one pass over the parameters: Deeplearning4j's
 * updater runs about ten array operations for it (divide by the batch, the velocity's multiply and
 * add, the step's assign and multiply, the parameters' subtract, the norm), each a native call with
 * its own pass over every parameter; for LeNet's 431,080 parameters on one thread that is 5.8 ms of
 * a 44 ms step. The pass copies a few thousand floats at a time from the native buffers into Java
 * arrays and back: loops over arrays compile to vector instructions, loops over native memory do
 * not (LeNet, one thread: 1.1-1.6 ms a step over the native buffers directly, 0.75 this way, the
 * norm included).
 *
 * <p>The arithmetic is Deeplearning4j's to the bit, operation by operation in float32: {@code g =
 * sum / batch}, {@code v = v * momentum + g}, {@code step = v * lr}, {@code parameter -= step}
 * ({@code FusedMomentumStepTest} compares both over many steps); a vector instruction rounds each
 * lane as the scalar one does, and Java never fuses a multiply and an add. The gradient norm is
 * computed in double precision, which Deeplearning4j's float reduction approximates.
 *
 * <p>BatchNorm's running mean and variance, which Deeplearning4j's updater leaves as they are
 * (their "gradient" is the update itself, not divided by the batch, under a {@code NoOp} updater),
 * are subtracted as Deeplearning4j subtracts them and left out of the norm.
 *
 * <p>Not thread-safe: one per replica, over that replica's network.
 */
final class FusedMomentumStep {
  /** Floats per pass of {@link #step}: three chunks stay in the first-level cache. */
  private static final int CHUNK = 2048;

  /**
   * One updater block of momentum: its parameters {@code [start, start + length)} and their
   * velocity.
   */
  private record Trained(int start, int length, Momentum rule, FloatBuffer velocity) {}

  private final List<Trained> trained;
  private final FloatBuffer gradients;
  private final FloatBuffer parameters;
  private final int count;

  private final float[] gradientChunk = new float[CHUNK];
  private final float[] velocityChunk = new float[CHUNK];
  private final float[] parameterChunk = new float[CHUNK];

  private FusedMomentumStep(List<Trained> trained, INDArray gradients, INDArray parameters) {
    this.trained = trained;
    this.count = (int) parameters.length();
    this.gradients = floats(gradients);
    this.parameters = floats(parameters);
  }

  /**
   * An ND4J float array's native memory as a buffer whose bulk copies are plain memory copies (and
   * need no access to the JDK's internals, as Agrona's buffers do).
   */
  private static FloatBuffer floats(INDArray array) {
    final BytePointer pointer =
        new BytePointer() {
          {
            address = Replica.nativeAddress(array);
          }
        };
    return pointer
        .capacity(array.length() * Float.BYTES)
        .asByteBuffer()
        .order(ByteOrder.nativeOrder())
        .asFloatBuffer();
  }

  /**
   * The fused step for a network, where its updater is one block of {@link Momentum} over every
   * parameter and nothing else touches the gradient.
   *
   * @param network the network
   * @return the step, or empty where Deeplearning4j's updater must run
   */
  static Optional<FusedMomentumStep> of(ComputationGraph network) {
    final Updater updater = network.getUpdater(true);
    if (!(updater instanceof BaseMultiLayerUpdater<?> multi)) {
      return Optional.empty();
    }
    for (Layer layer : network.getLayers()) {
      if (layer.numParams() > 0 && !plain(layer)) {
        return Optional.empty();
      }
    }
    final INDArray gradients = network.getGradientsViewArray();
    final INDArray parameters = network.params();
    final long count = network.numParams();
    if (!dense(gradients, count) || !dense(parameters, count)) {
      return Optional.empty();
    }
    final List<Trained> trained = new ArrayList<>();
    long next = 0;
    for (UpdaterBlock block : multi.getUpdaterBlocks()) {
      final int start = block.getParamOffsetStart();
      final int length = block.getParamOffsetEnd() - start;
      final Object rule = block.getGradientUpdater().getConfig();
      if (start != next || block.isPretrainUpdaterBlock()) {
        return Optional.empty();
      }
      next = block.getParamOffsetEnd();
      if (rule instanceof Momentum momentum && dividedByBatch(block, true)) {
        final INDArray velocity = block.getUpdaterView();
        if (!dense(velocity, length)) {
          return Optional.empty();
        }
        trained.add(new Trained(start, length, momentum, floats(velocity)));
      } else if (!(rule instanceof NoOp) || !dividedByBatch(block, false)) {
        return Optional.empty();
      }
    }
    if (next != count || trained.isEmpty()) {
      return Optional.empty();
    }
    return Optional.of(new FusedMomentumStep(trained, gradients, parameters));
  }

  /**
   * Whether Deeplearning4j divides each of the block's gradients by the batch ({@code all}) or
   * none.
   */
  private static boolean dividedByBatch(UpdaterBlock block, boolean all) {
    return block.getLayersAndVariablesInBlock().stream()
        .allMatch(state -> state.getLayer().updaterDivideByMinibatch(state.getParamName()) == all);
  }

  /** A layer whose gradient only the updater changes. */
  private static boolean plain(Layer layer) {
    if (!(layer.conf().getLayer() instanceof BaseLayer conf)) {
      return false;
    }
    final GradientNormalization normalization = conf.getGradientNormalization();
    if ((conf.getRegularization() != null && !conf.getRegularization().isEmpty())
        || (conf.getRegularizationBias() != null && !conf.getRegularizationBias().isEmpty())
        || (normalization != null && normalization != GradientNormalization.None)) {
      return false;
    }
    return true;
  }

  private static boolean dense(INDArray array, long count) {
    return array.dataType() == DataType.FLOAT
        && array.length() == count
        && count <= Integer.MAX_VALUE / Float.BYTES
        && array.elementWiseStride() == 1;
  }

  /**
   * The L2 norm of the gradient buffer.
   *
   * @return the norm
   */
  double gradientNorm() {
    final float[] g = gradientChunk;
    // four sums, so that each addition need not wait for the one before it
    double a = 0;
    double b = 0;
    double c = 0;
    double d = 0;
    for (Trained block : trained) {
      final int end = block.start() + block.length();
      for (int start = block.start(); start < end; start += CHUNK) {
        final int n = Math.min(CHUNK, end - start);
        gradients.get(start, g, 0, n);
        int i = 0;
        for (; i + 3 < n; i += 4) {
          final double x = g[i];
          final double y = g[i + 1];
          final double z = g[i + 2];
          final double t = g[i + 3];
          a += x * x;
          b += y * y;
          c += z * z;
          d += t * t;
        }
        for (; i < n; i++) {
          final double x = g[i];
          a += x * x;
        }
      }
    }
    return Math.sqrt((a + b) + (c + d));
  }

  /**
   * One optimizer step from the gradient sum in the buffer: the velocity moves, the step replaces
   * the gradient in the buffer and, when {@code apply}, is subtracted from the parameters.
   *
   * @param batchSize the samples behind the sum
   * @param iteration the iteration, for the learning-rate schedule
   * @param epoch the epoch, for the learning-rate schedule
   * @param apply whether to subtract the step from the parameters
   */
  void step(int batchSize, int iteration, int epoch, boolean apply) {
    final float divisor = batchSize;
    final float[] g = gradientChunk;
    final float[] v = velocityChunk;
    for (Trained block : trained) {
      final float momentum = (float) block.rule().getMomentum();
      final float rate = (float) block.rule().getLearningRate(iteration, epoch);
      for (int at = 0; at < block.length(); at += CHUNK) {
        final int n = Math.min(CHUNK, block.length() - at);
        gradients.get(block.start() + at, g, 0, n);
        block.velocity().get(at, v, 0, n);
        // loops over arrays, which the compiler turns into vector instructions (a loop over native
        // memory it does not): the same float operations lane by lane, so the same bits
        for (int i = 0; i < n; i++) {
          final float next = v[i] * momentum + g[i] / divisor;
          v[i] = next;
          g[i] = next * rate;
        }
        gradients.put(block.start() + at, g, 0, n);
        block.velocity().put(at, v, 0, n);
      }
    }
    if (apply) {
      // every parameter, running statistics included, takes its update as Deeplearning4j's does
      final float[] w = parameterChunk;
      for (int start = 0; start < count; start += CHUNK) {
        final int n = Math.min(CHUNK, count - start);
        gradients.get(start, g, 0, n);
        parameters.get(start, w, 0, n);
        for (int i = 0; i < n; i++) {
          w[i] -= g[i];
        }
        parameters.put(start, w, 0, n);
      }
    }
  }
}
