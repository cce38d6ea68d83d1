package io.lockstep.worker.engine;

import static org.bytedeco.dnnl.global.dnnl.dnnl_binary_add;

import io.lockstep.worker.engine.Dnnl.Memory;
import io.lockstep.worker.engine.Dnnl.Scope;
import java.util.ArrayList;
import java.util.List;

/** The sum of two tensors of one shape. */
final class Add extends Op {
  Add(String name, List<String> inputs) {
    super(name, inputs);
  }

  @Override
  void build(Plan plan, List<Action> forward, List<Action> back) {
    final Scope scope = plan.scope;
    final Tensor a = plan.tensor(inputs.get(0));
    final Tensor b = plan.tensor(inputs.get(1));
    final Memory dst = scope.allocate(a.data.md);
    forward.add(plan.run(plan.binary(dnnl_binary_add, a.data, b.data, dst)));
    final Tensor out = plan.output(name, a.dims, dst);
    for (Tensor in : List.of(a, b)) {
      if (in.needsDiff) {
        final List<Action> accumulate = new ArrayList<>();
        final Memory target = plan.diffTarget(in, accumulate);
        back.add(plan.run(scope.reorder(out.diff, target)));
        back.addAll(accumulate);
      }
    }
  }
}
