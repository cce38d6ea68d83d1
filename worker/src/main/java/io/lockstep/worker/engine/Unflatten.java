package io.lockstep.worker.engine;

import io.lockstep.worker.engine.Dnnl.Memory;
import java.util.ArrayList;
import java.util.List;

/**
 * Deeplearning4j's {@code FeedForwardToCnnPreProcessor}: rows {@code [n, channels x height x
 * width]} read as images {@code [n, channels, height, width]} in the same memory (row-major, as
 * Deeplearning4j reshapes them).
 */
final class Unflatten extends Op {
  private final long channels;
  private final long height;
  private final long width;

  Unflatten(String name, String input, long channels, long height, long width) {
    super(name, List.of(input));
    this.channels = channels;
    this.height = height;
    this.width = width;
  }

  @Override
  void build(Plan plan, List<Action> forward, List<Action> back) {
    final Tensor in = plan.tensor(inputs.get(0));
    final long n = in.dims[0];
    if (in.dims.length != 2 || in.dims[1] != channels * height * width) {
      throw new IllegalArgumentException(
          "vertex "
              + name
              + " reads rows of "
              + channels * height * width
              + " values as "
              + channels
              + "x"
              + height
              + "x"
              + width
              + " images; its input gives "
              + java.util.Arrays.toString(in.dims));
    }
    final Memory rows = plan.as(Dnnl.plain(in.dims), forward, in.data);
    final long[] dims = {n, channels, height, width};
    final Tensor out = plan.output(name, dims, plan.scope.wrap(Dnnl.plain(dims), rows.address()));
    if (in.needsDiff) {
      final List<Action> accumulate = new ArrayList<>();
      final Memory target = plan.diffTarget(in, accumulate);
      final Memory diffRows = plan.scope.wrap(rows.md, out.diff.address());
      back.add(plan.run(plan.scope.reorder(diffRows, target)));
      back.addAll(accumulate);
    }
  }
}
