package io.lockstep.worker.engine;

import io.lockstep.worker.engine.Dnnl.Memory;
import java.util.ArrayList;
import java.util.List;

/**
 * Deeplearning4j's {@code LastTimeStepVertex} without masks: a sequence's last step, {@code [n,
 * channels]}, read in place (the sequence's steps lie one after another); its gradient is zero at
 * every other step.
 */
final class LastStep extends Op {
  LastStep(String name, String input) {
    super(name, List.of(input));
  }

  @Override
  void build(Plan plan, List<Action> forward, List<Action> back) {
    final Tensor in = plan.tensor(inputs.get(0));
    final long n = in.dims[0];
    final long channels = in.dims[1];
    final long length = in.dims[2];
    if (!Dnnl.same(in.data.md, Lstm.sequenceMd(n, channels, length))) {
      throw new IllegalStateException("vertex " + name + " reads a sequence in another layout");
    }
    final long last = (length - 1) * n * channels * Float.BYTES;
    final long[] dims = {n, channels};
    final Tensor out =
        plan.output(name, dims, plan.scope.wrap(Dnnl.plain(dims), in.data.address() + last));
    if (in.needsDiff) {
      final List<Action> accumulate = new ArrayList<>();
      final Memory target = plan.diffTarget(in, accumulate);
      back.add(plan.zero(target));
      final Memory lastStep = plan.scope.wrap(Dnnl.plain(dims), target.address() + last);
      back.add(plan.run(plan.scope.reorder(out.diff, lastStep)));
      back.addAll(accumulate);
    }
  }
}
