package io.lockstep.worker;

import io.lockstep.models.Momentum;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
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
 * <p>The norm, the velocity's update and the parameters' take one pass over the parameters, on as
 * many Java threads as the replica has compute threads (which are idle meanwhile), each over a
 * contiguous run of chunks. The norm is summed chunk by chunk, each chunk's in four lanes, and the
 * chunks' in their order, whatever the threads: the same bits on one thread or many.
 *
 * <p>Not thread-safe: one per replica, over that replica's network; {@link #close} stops its
 * threads.
 */
final class FusedMomentumStep implements AutoCloseable {
  /** Floats per chunk: three chunks stay in the first-level cache. */
  private static final int CHUNK = 2048;

  /**
   * A run of at most {@link #CHUNK} parameters within one updater block: trained by momentum (its
   * block's index in {@link #rules}, its velocity from {@code velocityAt}), or by nothing (-1:
   * BatchNorm's running statistics, whose update is only subtracted).
   */
  private record Chunk(int start, int length, int rule, FloatBuffer velocity, int velocityAt) {}

  private final List<Chunk> chunks;
  private final List<Momentum> rules;
  private final FloatBuffer gradients;
  private final FloatBuffer parameters;

  /** Each chunk's share of the squared norm, summed in chunk order. */
  private final double[] squares;

  /** One set of arrays per thread, the caller's first. */
  private final Lane[] lanes;

  /** The threads besides the caller's; null on one thread. */
  private final ExecutorService helpers;

  private final float[] momenta;
  private final float[] rates;

  /** A thread's chunk arrays. */
  private static final class Lane {
    final float[] gradient = new float[CHUNK];
    final float[] velocity = new float[CHUNK];
    final float[] parameter = new float[CHUNK];
  }

  private FusedMomentumStep(
      List<Chunk> chunks,
      List<Momentum> rules,
      INDArray gradients,
      INDArray parameters,
      int threads) {
    this.chunks = chunks;
    this.rules = rules;
    this.gradients = floats(gradients);
    this.parameters = floats(parameters);
    this.squares = new double[chunks.size()];
    this.momenta = new float[rules.size()];
    this.rates = new float[rules.size()];
    // a thread is worth its hand-off only for a few chunks of its own
    final int used = Math.max(1, Math.min(threads, chunks.size() / 8));
    this.lanes = new Lane[used];
    for (int i = 0; i < used; i++) {
      lanes[i] = new Lane();
    }
    this.helpers =
        used == 1
            ? null
            : Executors.newFixedThreadPool(
                used - 1,
                task -> {
                  final Thread thread = new Thread(task, "lockstep-optimizer-step");
                  thread.setDaemon(true);
                  return thread;
                });
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
   * @param threads the threads the step may run on, the caller's included
   * @return the step, or empty where Deeplearning4j's updater must run
   */
  static Optional<FusedMomentumStep> of(ComputationGraph network, int threads) {
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
    final List<Chunk> chunks = new ArrayList<>();
    final List<Momentum> rules = new ArrayList<>();
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
        final FloatBuffer velocities = floats(velocity);
        for (int at = 0; at < length; at += CHUNK) {
          chunks.add(
              new Chunk(start + at, Math.min(CHUNK, length - at), rules.size(), velocities, at));
        }
        rules.add(momentum);
      } else if (rule instanceof NoOp && dividedByBatch(block, false)) {
        for (int at = 0; at < length; at += CHUNK) {
          chunks.add(new Chunk(start + at, Math.min(CHUNK, length - at), -1, null, 0));
        }
      } else {
        return Optional.empty();
      }
    }
    if (next != count || rules.isEmpty()) {
      return Optional.empty();
    }
    return Optional.of(new FusedMomentumStep(chunks, rules, gradients, parameters, threads));
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
   * The L2 norm of the trained parameters' gradient in the buffer (the running statistics' updates
   * left out), summed as {@link #step} sums it.
   *
   * @return the norm
   */
  double gradientNorm() {
    final float[] g = lanes[0].gradient;
    double sum = 0;
    for (Chunk chunk : chunks) {
      if (chunk.rule() >= 0) {
        gradients.get(chunk.start(), g, 0, chunk.length());
        sum += squares(g, chunk.length());
      }
    }
    return Math.sqrt(sum);
  }

  /**
   * One optimizer step from the gradient sum in the buffer: the velocity moves, the step replaces
   * the gradient in the buffer and, when {@code apply}, is subtracted from the parameters.
   *
   * @param batchSize the samples behind the sum
   * @param iteration the iteration, for the learning-rate schedule
   * @param epoch the epoch, for the learning-rate schedule
   * @param apply whether to subtract the step from the parameters
   * @return the L2 norm of the trained parameters' gradient before the step, as {@link
   *     #gradientNorm} gives it
   */
  double step(int batchSize, int iteration, int epoch, boolean apply) {
    for (int r = 0; r < rules.size(); r++) {
      momenta[r] = (float) rules.get(r).getMomentum();
      rates[r] = (float) rules.get(r).getLearningRate(iteration, epoch);
    }
    final float divisor = batchSize;
    final List<Future<?>> running = new ArrayList<>(lanes.length - 1);
    for (int t = 1; t < lanes.length; t++) {
      final int lane = t;
      running.add(helpers.submit(() -> run(lane, divisor, apply)));
    }
    run(0, divisor, apply);
    for (Future<?> future : running) {
      try {
        future.get();
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new IllegalStateException("interrupted during the optimizer step", e);
      } catch (ExecutionException e) {
        throw new IllegalStateException("the optimizer step failed", e.getCause());
      }
    }
    double sum = 0;
    for (double share : squares) {
      sum += share;
    }
    return Math.sqrt(sum);
  }

  /** Thread {@code lane}'s contiguous run of chunks. */
  private void run(int lane, float divisor, boolean apply) {
    final Lane arrays = lanes[lane];
    final float[] g = arrays.gradient;
    final float[] v = arrays.velocity;
    final float[] w = arrays.parameter;
    final int from = (int) ((long) chunks.size() * lane / lanes.length);
    final int to = (int) ((long) chunks.size() * (lane + 1) / lanes.length);
    for (int c = from; c < to; c++) {
      final Chunk chunk = chunks.get(c);
      final int n = chunk.length();
      gradients.get(chunk.start(), g, 0, n);
      if (chunk.rule() >= 0) {
        squares[c] = squares(g, n);
        final float momentum = momenta[chunk.rule()];
        final float rate = rates[chunk.rule()];
        chunk.velocity().get(chunk.velocityAt(), v, 0, n);
        // loops over arrays, which the compiler turns into vector instructions (a loop over native
        // memory it does not): the same float operations lane by lane, so the same bits
        for (int i = 0; i < n; i++) {
          final float next = v[i] * momentum + g[i] / divisor;
          v[i] = next;
          g[i] = next * rate;
        }
        chunk.velocity().put(chunk.velocityAt(), v, 0, n);
        gradients.put(chunk.start(), g, 0, n);
      }
      if (apply) {
        // every parameter, running statistics included, takes its update as Deeplearning4j's does
        parameters.get(chunk.start(), w, 0, n);
        for (int i = 0; i < n; i++) {
          w[i] -= g[i];
        }
        parameters.put(chunk.start(), w, 0, n);
      }
    }
  }

  /** The sum of squares of {@code g[0, n)} in double precision, in four lanes. */
  private static double squares(float[] g, int n) {
    // four sums, so that each addition need not wait for the one before it
    double a = 0;
    double b = 0;
    double c = 0;
    double d = 0;
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
    return (a + b) + (c + d);
  }

  /** Stops the step's threads. */
  @Override
  public void close() {
    if (helpers != null) {
      helpers.shutdownNow();
    }
  }
}
