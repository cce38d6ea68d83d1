package io.lockstep.worker.engine;

import static org.bytedeco.dnnl.global.dnnl.dnnl_binary_mul;

import io.lockstep.models.SampleDropout;
import io.lockstep.worker.engine.Dnnl.Memory;
import io.lockstep.worker.engine.Dnnl.Scope;
import io.lockstep.worker.engine.Dnnl.Step;
import java.util.ArrayList;
import java.util.List;
import org.bytedeco.javacpp.FloatPointer;

/**
 * A layer's dropout in training, on the layer's input: each step Java fills the masks of the
 * batch's samples ({@link SampleDropout#masks}, in the order Deeplearning4j flattens the input,
 * which is the plain channels-first order), a reorder lays them out as the input is, and one
 * multiplication drops the input forward and its gradient backward.
 */
final class Dropout extends Op {
  private final SampleDropout dropout;

  Dropout(String name, String input, SampleDropout dropout) {
    super(name, List.of(input));
    this.dropout = dropout;
  }

  @Override
  void build(Plan plan, List<Action> forward, List<Action> back) {
    final Scope scope = plan.scope;
    final Tensor in = plan.tensor(inputs.get(0));
    final int n = (int) in.dims[0];
    long elements = 1;
    final long[] strides = new long[in.dims.length];
    for (int d = in.dims.length - 1; d >= 0; d--) {
      strides[d] = elements;
      elements *= in.dims[d];
    }
    final int perSample = (int) (elements / n);
    final Memory plainMask = scope.allocate(Dnnl.md(in.dims, strides));
    final Memory mask =
        Dnnl.same(plainMask.md, in.data.md) ? plainMask : scope.allocate(in.data.md);
    final FloatPointer maskValues = new FloatPointer(new Dnnl.Address(plainMask.address()));
    forward.add(() -> maskValues.put(dropout.masks(n, perSample)));
    if (mask != plainMask) {
      forward.add(plan.run(scope.reorder(plainMask, mask)));
    }
    final Memory dst = scope.allocate(in.data.md);
    forward.add(plan.run(plan.binary(dnnl_binary_mul, in.data, mask, dst)));
    final Tensor out = plan.output(name, in.dims, dst);
    if (in.needsDiff) {
      final List<Action> accumulate = new ArrayList<>();
      final Memory target = plan.diffTarget(in, accumulate);
      final Step drop = plan.binary(dnnl_binary_mul, out.diff, mask, target);
      back.add(plan.run(drop));
      back.addAll(accumulate);
    }
  }
}
