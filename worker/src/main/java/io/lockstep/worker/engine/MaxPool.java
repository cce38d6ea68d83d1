package io.lockstep.worker.engine;

import java.util.List;

/** Max or average pooling with a window and stride. */
final class MaxPool extends Op {
  private final int algorithm;
  private final int[] kernel;
  private final int[] stride;
  private final int[] padding;

  /**
   * @param algorithm oneDNN's pooling algorithm: max, or average with or without the padding in the
   *     divisor
   */
  MaxPool(String name, String input, int[] kernel, int[] stride, int[] padding, int algorithm) {
    super(name, List.of(input));
    this.algorithm = algorithm;
    this.kernel = kernel;
    this.stride = stride;
    this.padding = padding;
  }

  @Override
  void build(Plan plan, List<Action> forward, List<Action> back) {
    final Tensor in = plan.tensor(inputs.get(0));
    final long outH = outputSize(in.dims[2], kernel[0], stride[0], padding[0]);
    final long outW = outputSize(in.dims[3], kernel[1], stride[1], padding[1]);
    pool(
        plan,
        forward,
        back,
        this,
        in,
        new long[] {in.dims[0], in.dims[1], outH, outW},
        algorithm,
        new long[] {kernel[0], kernel[1]},
        new long[] {stride[0], stride[1]},
        new long[] {padding[0], padding[1]},
        new long[] {padding[0], padding[1]});
  }
}
