package io.lockstep.worker.engine;

import static org.bytedeco.dnnl.global.dnnl.dnnl_pooling_avg_exclude_padding;

import java.util.List;

/** Average over each channel's whole map, to {@code [n, c, 1, 1]}. */
final class GlobalAverage extends Op {
  GlobalAverage(String name, String input) {
    super(name, List.of(input));
  }

  @Override
  void build(Plan plan, List<Action> forward, List<Action> back) {
    final Tensor in = plan.tensor(inputs.get(0));
    pool(
        plan,
        forward,
        back,
        this,
        in,
        new long[] {in.dims[0], in.dims[1], 1, 1},
        dnnl_pooling_avg_exclude_padding,
        new long[] {in.dims[2], in.dims[3]},
        new long[] {1, 1},
        new long[] {0, 0},
        new long[] {0, 0});
  }
}
