package io.lockstep.worker.engine;

import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_DST;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_SRC;
import static org.bytedeco.dnnl.global.dnnl.dnnl_eltwise_forward_desc_init;
import static org.bytedeco.dnnl.global.dnnl.dnnl_eltwise_relu_use_dst_for_bwd;
import static org.bytedeco.dnnl.global.dnnl.dnnl_forward_training;

import io.lockstep.worker.engine.Dnnl.Memory;
import io.lockstep.worker.engine.Dnnl.Scope;
import java.util.ArrayList;
import java.util.List;
import org.bytedeco.dnnl.dnnl_eltwise_desc_t;
import org.bytedeco.dnnl.dnnl_primitive_desc;

/** A ReLU activation layer. */
final class Relu extends Op {
  Relu(String name, String input) {
    super(name, List.of(input));
  }

  @Override
  void build(Plan plan, List<Action> forward, List<Action> back) {
    final Scope scope = plan.scope;
    final Tensor in = plan.tensor(inputs.get(0));
    final dnnl_eltwise_desc_t desc = new dnnl_eltwise_desc_t();
    Dnnl.check(
        dnnl_eltwise_forward_desc_init(
            desc, dnnl_forward_training, dnnl_eltwise_relu_use_dst_for_bwd, in.data.md, 0f, 0f),
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
      back.add(plan.run(reluBackward(scope, dst, out.diff, target)));
      back.addAll(accumulate);
    }
  }
}
