package io.lockstep.worker.engine;

import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_DIFF_DST;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_DIFF_SRC;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_DST;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_SRC;
import static org.bytedeco.dnnl.global.dnnl.dnnl_eltwise_backward_desc_init;
import static org.bytedeco.dnnl.global.dnnl.dnnl_eltwise_clip_v2;
import static org.bytedeco.dnnl.global.dnnl.dnnl_eltwise_forward_desc_init;
import static org.bytedeco.dnnl.global.dnnl.dnnl_eltwise_relu_use_dst_for_bwd;
import static org.bytedeco.dnnl.global.dnnl.dnnl_forward_training;

import io.lockstep.worker.engine.Dnnl.Memory;
import io.lockstep.worker.engine.Dnnl.Scope;
import java.util.ArrayList;
import java.util.List;
import org.bytedeco.dnnl.dnnl_eltwise_desc_t;
import org.bytedeco.dnnl.dnnl_primitive_desc;

/**
 * A ReLU activation layer: max(0, x), leaky (a slope below zero) or ReLU6 (min(max(0, x), 6)).
 * ReLU's and leaky ReLU's backward passes read the output, ReLU6's the input (oneDNN 2.5 has only
 * reference code for the clip's backward from its output).
 */
final class Relu extends Op {
  private final int algorithm;
  private final float alpha;
  private final float beta;

  /** max(0, x). */
  Relu(String name, String input) {
    this(name, input, dnnl_eltwise_relu_use_dst_for_bwd, 0f, 0f);
  }

  private Relu(String name, String input, int algorithm, float alpha, float beta) {
    super(name, List.of(input));
    this.algorithm = algorithm;
    this.alpha = alpha;
    this.beta = beta;
  }

  /**
   * @param slope the slope below zero, in [0, 1)
   * @return x for x > 0, slope x below
   */
  static Relu leaky(String name, String input, double slope) {
    return new Relu(name, input, dnnl_eltwise_relu_use_dst_for_bwd, (float) slope, 0f);
  }

  /**
   * @return min(max(0, x), 6); its gradient passes where 0 < x < 6
   */
  static Relu six(String name, String input) {
    return new Relu(name, input, dnnl_eltwise_clip_v2, 0f, 6f);
  }

  @Override
  void build(Plan plan, List<Action> forward, List<Action> back) {
    final Scope scope = plan.scope;
    final Tensor in = plan.tensor(inputs.get(0));
    final dnnl_eltwise_desc_t desc = new dnnl_eltwise_desc_t();
    Dnnl.check(
        dnnl_eltwise_forward_desc_init(
            desc, dnnl_forward_training, algorithm, in.data.md, alpha, beta),
        "ReLU " + name);
    final dnnl_primitive_desc fwd = scope.describe(desc, null, null, "ReLU");
    final Memory dst = scope.allocate(in.data.md);
    forward.add(
        plan.run(
            scope.step(
                fwd, new int[] {DNNL_ARG_SRC, DNNL_ARG_DST}, new Memory[] {in.data, dst}, name)));
    final Tensor out = plan.output(name, in.dims, dst);
    if (in.needsDiff) {
      final List<Action> accumulate = new ArrayList<>();
      final Memory target = plan.diffTarget(in, accumulate);
      // the use_dst algorithms read the output, the others the input (kept: nothing overwrites it)
      final Memory data = algorithm == dnnl_eltwise_clip_v2 ? in.data : dst;
      final dnnl_eltwise_desc_t backward = new dnnl_eltwise_desc_t();
      Dnnl.check(
          dnnl_eltwise_backward_desc_init(backward, algorithm, out.diff.md, data.md, alpha, beta),
          "ReLU backward " + name);
      final dnnl_primitive_desc bwd = scope.describe(backward, null, fwd, "ReLU backward");
      back.add(
          plan.run(
              scope.step(
                  bwd,
                  new int[] {
                    data == dst ? DNNL_ARG_DST : DNNL_ARG_SRC, DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_SRC
                  },
                  new Memory[] {data, out.diff, target},
                  name)));
      back.addAll(accumulate);
    }
  }
}
