package io.lockstep.worker.engine;

import static org.bytedeco.dnnl.global.dnnl.dnnl_memory_desc_init_submemory;
import static org.bytedeco.dnnl.global.dnnl.dnnl_nChw16c;
import static org.bytedeco.dnnl.global.dnnl.dnnl_nChw8c;
import static org.bytedeco.dnnl.global.dnnl.dnnl_nchw;
import static org.bytedeco.dnnl.global.dnnl.dnnl_nhwc;
import static org.bytedeco.dnnl.global.dnnl.dnnl_success;

import io.lockstep.worker.engine.Dnnl.Memory;
import io.lockstep.worker.engine.Dnnl.Scope;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.bytedeco.dnnl.dnnl_memory_desc_t;

/**
 * Inputs of one size joined along channels, as Deeplearning4j's {@code MergeVertex}: each input is
 * copied into its channels of the output, and each input's gradient is the same channels of the
 * output's gradient. The output keeps the inputs' layout where they share one whose channel blocks
 * the joins do not split (DenseNet's and Inception's channel counts are multiples of 16, so their
 * convolutions and BatchNorms stay on blocked kernels); else it is plain NCHW.
 */
final class Concat extends Op {
  /** The layouts an output may take, most preferred first; plain NCHW always fits. */
  private static final int[] LAYOUTS = {dnnl_nChw16c, dnnl_nChw8c, dnnl_nhwc, dnnl_nchw};

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
    dnnl_memory_desc_t outMd = null;
    List<dnnl_memory_desc_t> views = null;
    for (int layout : LAYOUTS) {
      outMd = Dnnl.md(outDims, layout);
      views = views(outMd, parts, layout);
      if (views != null) {
        break;
      }
    }
    final Memory dst = scope.allocate(outMd);
    for (int i = 0; i < parts.size(); i++) {
      final Memory view = scope.wrap(views.get(i), dst.address());
      forward.add(plan.run(scope.reorder(parts.get(i).data, view)));
    }
    final Tensor out = plan.output(name, outDims, dst);
    for (int i = 0; i < parts.size(); i++) {
      final Tensor part = parts.get(i);
      if (part.needsDiff) {
        final Memory view = scope.wrap(views.get(i), out.diff.address());
        final List<Action> accumulate = new ArrayList<>();
        final Memory target = plan.diffTarget(part, accumulate);
        back.add(plan.run(scope.reorder(view, target)));
        back.addAll(accumulate);
      }
    }
  }

  /**
   * Each part's channels of an output in {@code layout}, or null when a part is in another layout
   * (plain NCHW takes any) or its channels would split one of the layout's blocks.
   */
  private static List<dnnl_memory_desc_t> views(
      dnnl_memory_desc_t outMd, List<Tensor> parts, int layout) {
    final List<dnnl_memory_desc_t> views = new ArrayList<>();
    long offset = 0;
    for (Tensor part : parts) {
      if (layout != dnnl_nchw && !Dnnl.same(part.data.md, Dnnl.md(part.dims, layout))) {
        return null;
      }
      final dnnl_memory_desc_t view = new dnnl_memory_desc_t();
      if (dnnl_memory_desc_init_submemory(view, outMd, part.dims, new long[] {0, offset, 0, 0})
          != dnnl_success) {
        return null;
      }
      views.add(view);
      offset += part.dims[1];
    }
    return views;
  }
}
