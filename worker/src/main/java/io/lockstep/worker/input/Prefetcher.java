package io.lockstep.worker.input;

import io.lockstep.data.EpochPlan;
import io.lockstep.data.SliceSpan;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * Makes a rank's batches on a thread of its own, one step ahead: while the training thread computes
 * step {@code s}, this one decodes and transforms the images of step {@code s + 1}. Whoever takes a
 * batch frees it ({@link Batch#release}) when its step is over.
 */
public final class Prefetcher implements AutoCloseable {
  /**
   * One step's slice, made.
   *
   * @param slice the images' indices; empty when this rank has none in the step
   * @param features {@code [n, c, h, w]}, or null for an empty slice
   * @param labels one-hot {@code [n, classes]}, or null for an empty slice
   */
  public record Batch(int[] slice, INDArray features, INDArray labels) {}

  /**
   * One batch's memory, made once per batch size and filled again for every step of that size: heap
   * arrays the split writes and the native arrays the network reads. Only the data thread touches
   * it.
   */
  private static final class Buffers {
    private float[] x;
    private float[] y;
    private INDArray features;
    private INDArray labels;

    void release() {
      NativeMemory.release(features, labels);
      features = null;
      labels = null;
    }

    Batch fill(Samples samples, int[] slice, int epoch, int classes) {
      final long[] featureShape = samples.featureShape(slice.length);
      final long[] labelShape = samples.labelShape(slice.length, classes);
      if (features == null
          || !java.util.Arrays.equals(features.shape(), featureShape)
          || !java.util.Arrays.equals(labels.shape(), labelShape)) {
        NativeMemory.release(features, labels);
        x = new float[Math.toIntExact(Samples.length(featureShape))];
        y = new float[Math.toIntExact(Samples.length(labelShape))];
        features = Nd4j.createUninitialized(DataType.FLOAT, featureShape, 'c');
        labels = Nd4j.createUninitialized(DataType.FLOAT, labelShape, 'c');
      }
      samples.features(slice, epoch, x);
      samples.labels(slice, classes, y);
      NativeMemory.write(features, x);
      NativeMemory.write(labels, y);
      return new Batch(slice, features, labels);
    }
  }

  private final Samples samples;
  private final EpochPlan plan;
  private final SliceSpan span;
  private final int epoch;
  private final int classes;
  private final int endStep;
  private final ExecutorService thread;

  /**
   * Two sets of buffers, used in turn: the training thread reads one while the data thread fills
   * the other.
   */
  private final Buffers[] buffers = {new Buffers(), new Buffers()};

  private Future<Batch> next;
  private int nextStep;

  /**
   * Starts making the first step's batch.
   *
   * @param samples the training split
   * @param plan the epoch's batches
   * @param rank this worker
   * @param span the slices of each global batch this worker computes
   * @param epoch the epoch, for random transforms
   * @param classes the model's output width
   * @param fromStep the first step
   * @param endStep the step after the last
   */
  public Prefetcher(
      Samples samples,
      EpochPlan plan,
      int rank,
      SliceSpan span,
      int epoch,
      int classes,
      int fromStep,
      int endStep) {
    this.samples = samples;
    this.plan = plan;
    this.span = span;
    this.epoch = epoch;
    this.classes = classes;
    this.endStep = endStep;
    this.thread = dataThread(rank);
    submit(fromStep);
  }

  /**
   * Each rank's data thread, kept for the JVM's life: a stage reuses the last one's rather than
   * starting a thread (with the per-thread state ND4J and the allocator give every thread that
   * makes arrays) and ending it again.
   */
  private static final Map<Integer, ExecutorService> DATA_THREADS = new ConcurrentHashMap<>();

  private static ExecutorService dataThread(int rank) {
    return DATA_THREADS.computeIfAbsent(
        rank,
        r ->
            Executors.newSingleThreadExecutor(
                task -> {
                  final Thread t = new Thread(task, "lockstep-data-rank-" + r);
                  t.setDaemon(true);
                  return t;
                }));
  }

  /**
   * The batch of {@code step}, waiting for it if it is not made yet, and starts the next.
   *
   * @param step the step, one after the previous call's
   * @return the batch
   * @throws RuntimeException what making the batch threw (an unreadable image names its file)
   */
  public Batch take(int step) {
    if (step != nextStep) {
      throw new IllegalStateException("asked for step " + step + ", made step " + nextStep);
    }
    final Batch batch;
    try {
      batch = next.get();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException("interrupted waiting for the batch of step " + step, e);
    } catch (ExecutionException e) {
      if (e.getCause() instanceof RuntimeException cause) {
        throw cause;
      }
      if (e.getCause() instanceof Error error) {
        throw error;
      }
      throw new IllegalStateException(e.getCause());
    }
    if (step + 1 < endStep) {
      submit(step + 1);
    } else {
      next = null;
    }
    return batch;
  }

  private void submit(int step) {
    nextStep = step;
    next =
        thread.submit(
            () -> {
              final int[] slice = plan.slices(step, span);
              if (slice.length == 0) {
                return new Batch(slice, null, null);
              }
              return buffers[step % 2].fill(samples, slice, epoch, classes);
            });
  }

  /**
   * Stops making batches and frees the buffers once the data thread is done with them, after the
   * batch it may be making (a stage that trained all its steps took every batch). The rank's data
   * thread stays for the next stage.
   */
  @Override
  public void close() {
    if (next != null) {
      next.cancel(true);
      next = null;
    }
    thread.submit(
        () -> {
          for (Buffers set : buffers) {
            set.release();
          }
        });
  }
}
