package io.lockstep.worker.engine;

import java.util.List;

/**
 * Max or average pooling with a window and stride; max pooling also in Deeplearning4j's Same mode
 * ({@code ceil(size / stride)} outputs, the padding split with the odd one at the bottom and right,
 * padded positions never the maximum).
 */
final class MaxPool extends Op {
  private final int algorithm;
  private final int[] kernel;
  private final int[] stride;
  private final int[] padding;
  private final boolean same;

  /**
   * @param algorithm oneDNN's pooling algorithm: max, or average with or without the padding in the
   *     divisor
   * @param same whether in Same mode, where {@code padding} is not read
   */
  MaxPool(
      String name,
      String input,
      int[] kernel,
      int[] stride,
      int[] padding,
      int algorithm,
      boolean same) {
    super(name, List.of(input));
    this.algorithm = algorithm;
    this.kernel = kernel;
    this.stride = stride;
    this.padding = padding;
    this.same = same;
  }

  @Override
  void build(Plan plan, List<Action> forward, List<Action> back) {
    final Tensor in = plan.tensor(inputs.get(0));
    final long[] before = new long[2];
    final long[] after = new long[2];
    final long[] out = new long[2];
    for (int d = 0; d < 2; d++) {
      final long size = in.dims[2 + d];
      if (same) {
        out[d] = (size + stride[d] - 1) / stride[d];
        final long total = Math.max(0, (out[d] - 1) * stride[d] + kernel[d] - size);
        before[d] = total / 2;
        after[d] = total - before[d];
      } else {
        out[d] = outputSize(size, kernel[d], stride[d], padding[d]);
        before[d] = padding[d];
        after[d] = padding[d];
      }
    }
    pool(
        plan,
        forward,
        back,
        this,
        in,
        new long[] {in.dims[0], in.dims[1], out[0], out[1]},
        algorithm,
        new long[] {kernel[0], kernel[1]},
        new long[] {stride[0], stride[1]},
        before,
        after);
  }
}
