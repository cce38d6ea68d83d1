package io.lockstep.worker.engine;

import static org.bytedeco.dnnl.global.dnnl.dnnl_nchw;

import io.lockstep.worker.engine.Dnnl.Memory;
import io.lockstep.worker.engine.Dnnl.Scope;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Inputs of one size joined along channels, as Deeplearning4j's {@code MergeVertex}: each input is
 * copied into its channels of a plain NCHW output, and each input's gradient is the same channels
 * of the output's gradient.
 */
final class Concat extends Op {
  Concat(String name, List<String> inputs) {
    super(name, inputs);
  }

  @Override
  void build(Plan plan, List<Action> forward, List<Action> back) {
    final Scope scope = plan.scope;
    final List<Tensor> parts = new ArrayList<>();
    long channels = 0;
    for (String input : inputs) {
      final Tensor part = plan.tensor(input);
      final Tensor first = parts.isEmpty() ? part : parts.get(0);
      if (part.dims.length != 4
          || part.dims[0] != first.dims[0]
          || part.dims[2] != first.dims[2]
          || part.dims[3] != first.dims[3]) {
        throw new IllegalArgumentException(
            "vertex "
                + name
                + " joins "
                + Arrays.toString(first.dims)
                + " and "
                + Arrays.toString(part.dims)
                + ": only the channels may differ");
      }
      parts.add(part);
      channels += part.dims[1];
    }
    final long[] first = parts.get(0).dims;
    final long[] outDims = {first[0], channels, first[2], first[3]};
    final Memory dst = scope.allocate(Dnnl.md(outDims, dnnl_nchw));
    final long plane = first[2] * first[3];
    final long[] strides = {channels * plane, plane, first[3], 1};
    long offset = 0;
    for (Tensor part : parts) {
      final Memory view = scope.wrap(Dnnl.md(part.dims, strides), dst.address() + offset);
      forward.add(plan.run(scope.reorder(part.data, view)));
      offset += part.dims[1] * plane * Float.BYTES;
    }
    final Tensor out = plan.output(name, outDims, dst);
    offset = 0;
    for (Tensor part : parts) {
      if (part.needsDiff) {
        final Memory view = scope.wrap(Dnnl.md(part.dims, strides), out.diff.address() + offset);
        final List<Action> accumulate = new ArrayList<>();
        final Memory target = plan.diffTarget(part, accumulate);
        back.add(plan.run(scope.reorder(view, target)));
        back.addAll(accumulate);
      }
      offset += part.dims[1] * plane * Float.BYTES;
    }
  }
}
