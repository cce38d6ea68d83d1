package io.lockstep.worker.engine;

import io.lockstep.models.ModelZoo;
import io.lockstep.worker.engine.Dnnl.Memory;
import java.util.List;
import org.bytedeco.javacpp.FloatPointer;
import org.deeplearning4j.nn.api.Layer;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * Deeplearning4j's {@code EmbeddingSequenceLayer} without bias: token ids {@code [n, length]} to
 * the rows of the weights {@code [vocabulary, size]} they name, a sequence {@code [n, size,
 * length]} (in {@link Lstm#sequenceMd}'s layout, the one oneDNN's LSTM reads); the weights'
 * gradient is the output's gradient summed into the rows the batch named, sample by sample and step
 * by step. Gathers and scatters of a few hundred floats: Java computes them between primitives.
 */
final class Embedding extends Op {
  private final Layer layer;
  private final long vocabulary;
  private final long size;

  Embedding(String name, String input, Layer layer, long vocabulary, long size) {
    super(name, List.of(input));
    this.layer = layer;
    this.vocabulary = vocabulary;
    this.size = size;
  }

  @Override
  void build(Plan plan, List<Action> forward, List<Action> back) {
    final Tensor in = plan.tensor(inputs.get(0));
    final int n = (int) in.dims[0];
    final int length = (int) in.dims[1];
    final int width = (int) size;
    final INDArray w = layer.getParam("W");
    final INDArray gw = ModelZoo.gradientViews(layer).get("W");
    final Memory dst = plan.scope.allocate(Lstm.sequenceMd(n, size, length));
    final FloatPointer output = new FloatPointer(new Dnnl.Address(dst.address()));
    final int[] ids = new int[n * length];
    final float[] tokens = new float[n * length];
    final float[] rows = new float[(int) (vocabulary * size)];
    final float[] sequence = new float[n * length * width];
    forward.add(
        () -> {
          plan.scope.await();
          new FloatPointer(new Dnnl.Address(in.data.address())).get(tokens);
          for (int i = 0; i < n; i++) {
            for (int t = 0; t < length; t++) {
              ids[i * length + t] = tokenId(tokens[i * length + t], i, t);
            }
          }
          read(w, rows);
          // the output is [length, n, size] in memory: step by step, each sample's vector
          for (int t = 0; t < length; t++) {
            for (int i = 0; i < n; i++) {
              System.arraycopy(
                  rows, ids[i * length + t] * width, sequence, (t * n + i) * width, width);
            }
          }
          output.put(sequence);
        });
    final Tensor out = plan.output(name, new long[] {n, size, length}, dst);
    final FloatPointer diff = new FloatPointer(new Dnnl.Address(out.diff.address()));
    back.add(
        () -> {
          plan.scope.await();
          diff.get(sequence);
          java.util.Arrays.fill(rows, 0f);
          for (int i = 0; i < n; i++) {
            for (int t = 0; t < length; t++) {
              final int row = ids[i * length + t] * width;
              final int from = (t * n + i) * width;
              for (int k = 0; k < width; k++) {
                rows[row + k] += sequence[from + k];
              }
            }
          }
          write(rows, gw);
        });
    plan.done(name, back);
  }

  /** A token's id: a whole number below the vocabulary's size. */
  private int tokenId(float value, int sample, int step) {
    if (!(value >= 0 && value < vocabulary && value == Math.rint(value))) {
      throw new IllegalArgumentException(
          "layer "
              + name
              + ": token "
              + value
              + " of sample "
              + sample
              + " at position "
              + step
              + " is not a word of its vocabulary (ids 0 to "
              + (vocabulary - 1)
              + ")");
    }
    return (int) value;
  }

  /** The weights {@code [vocabulary, size]}, row by row, whatever the view's strides. */
  private void read(INDArray view, float[] into) {
    final FloatPointer from = new FloatPointer(new Dnnl.Address(Dnnl.address(view)));
    final long rowStride = view.stride(0);
    final long colStride = view.stride(1);
    for (int r = 0; r < vocabulary; r++) {
      for (int c = 0; c < size; c++) {
        into[(int) (r * size + c)] = from.get(r * rowStride + c * colStride);
      }
    }
  }

  private void write(float[] from, INDArray view) {
    final FloatPointer into = new FloatPointer(new Dnnl.Address(Dnnl.address(view)));
    final long rowStride = view.stride(0);
    final long colStride = view.stride(1);
    for (int r = 0; r < vocabulary; r++) {
      for (int c = 0; c < size; c++) {
        into.put(r * rowStride + c * colStride, from[(int) (r * size + c)]);
      }
    }
  }
}
