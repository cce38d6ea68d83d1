package io.lockstep.worker.engine;

import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_DIFF_DST;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_DIFF_SRC;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_DST;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_SRC;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_WEIGHTS;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_WORKSPACE;
import static org.bytedeco.dnnl.global.dnnl.dnnl_convolution_direct;
import static org.bytedeco.dnnl.global.dnnl.dnnl_dilated_convolution_forward_desc_init;
import static org.bytedeco.dnnl.global.dnnl.dnnl_eltwise_backward_desc_init;
import static org.bytedeco.dnnl.global.dnnl.dnnl_eltwise_forward_desc_init;
import static org.bytedeco.dnnl.global.dnnl.dnnl_eltwise_relu;
import static org.bytedeco.dnnl.global.dnnl.dnnl_eltwise_relu_use_dst_for_bwd;
import static org.bytedeco.dnnl.global.dnnl.dnnl_format_tag_any;
import static org.bytedeco.dnnl.global.dnnl.dnnl_forward_training;
import static org.bytedeco.dnnl.global.dnnl.dnnl_pooling_max;
import static org.bytedeco.dnnl.global.dnnl.dnnl_pooling_v2_backward_desc_init;
import static org.bytedeco.dnnl.global.dnnl.dnnl_pooling_v2_forward_desc_init;
import static org.bytedeco.dnnl.global.dnnl.dnnl_post_ops_append_eltwise;
import static org.bytedeco.dnnl.global.dnnl.dnnl_post_ops_create;
import static org.bytedeco.dnnl.global.dnnl.dnnl_post_ops_destroy;
import static org.bytedeco.dnnl.global.dnnl.dnnl_primitive_attr_create;
import static org.bytedeco.dnnl.global.dnnl.dnnl_primitive_attr_destroy;
import static org.bytedeco.dnnl.global.dnnl.dnnl_primitive_attr_set_post_ops;
import static org.bytedeco.dnnl.global.dnnl.dnnl_query_diff_src_md;
import static org.bytedeco.dnnl.global.dnnl.dnnl_query_dst_md;
import static org.bytedeco.dnnl.global.dnnl.dnnl_query_weights_md;
import static org.bytedeco.dnnl.global.dnnl.dnnl_query_workspace_md;

import io.lockstep.worker.engine.Dnnl.Memory;
import io.lockstep.worker.engine.Dnnl.Scope;
import io.lockstep.worker.engine.Dnnl.Step;
import java.util.ArrayList;
import java.util.List;
import org.bytedeco.dnnl.dnnl_convolution_desc_t;
import org.bytedeco.dnnl.dnnl_eltwise_desc_t;
import org.bytedeco.dnnl.dnnl_memory_desc_t;
import org.bytedeco.dnnl.dnnl_pooling_v2_desc_t;
import org.bytedeco.dnnl.dnnl_post_ops;
import org.bytedeco.dnnl.dnnl_primitive_attr;
import org.bytedeco.dnnl.dnnl_primitive_desc;
import org.deeplearning4j.nn.api.Layer;
import org.nd4j.linalg.api.ndarray.INDArray;

/** One vertex of the graph. */
abstract class Op {
  final String name;
  final List<String> inputs;

  Op(String name, List<String> inputs) {
    this.name = name;
    this.inputs = inputs;
  }

  /**
   * Creates the primitives and memories for one batch size and appends the forward actions to
   * {@code forward} and this operation's backward actions, in their order, to {@code back}.
   */
  abstract void build(Plan plan, List<Action> forward, List<Action> back);

  /**
   * Refuses data whose shape does not fit a layer's weights, before any memory is laid over them.
   */
  static void checkInputs(Layer layer, long got, String name, String what) {
    final long expected =
        ((org.deeplearning4j.nn.conf.layers.FeedForwardLayer) layer.conf().getLayer()).getNIn();
    if (got != expected) {
      throw new IllegalArgumentException(
          "layer "
              + name
              + " takes "
              + expected
              + " "
              + what
              + ", the data gives it "
              + got
              + ": the images do not have the shape the model was built for");
    }
  }

  /**
   * A window's output size in Truncate mode, floor((in + 2p - k) / s) + 1: oneDNN's too with the
   * same padding on both sides.
   */
  static long outputSize(long in, int kernel, int stride, int padding) {
    return (in + 2L * padding - kernel) / stride + 1;
  }

  /** A {C} vector over a [1, C] view. */
  static dnnl_memory_desc_t vectorMd(INDArray view) {
    return Dnnl.md(new long[] {view.length()}, new long[] {view.stride(view.rank() - 1)});
  }

  /** A forward primitive descriptor, with {@code relu} fused as a post-op unless it is null. */
  static dnnl_primitive_desc describeWithRelu(
      Scope scope, org.bytedeco.javacpp.Pointer operation, FusedRelu relu, String what) {
    final dnnl_primitive_attr attributes = reluAttributes(relu);
    try {
      return scope.describe(operation, attributes, null, what);
    } finally {
      if (attributes != null) {
        dnnl_primitive_attr_destroy(attributes);
      }
    }
  }

  static dnnl_primitive_attr reluAttributes(FusedRelu relu) {
    if (relu == null) {
      return null;
    }
    final dnnl_post_ops postOps = new dnnl_post_ops();
    Dnnl.check(dnnl_post_ops_create(postOps), "creating post-ops");
    Dnnl.check(
        dnnl_post_ops_append_eltwise(postOps, 1f, dnnl_eltwise_relu, relu.slope(), 0f),
        "appending ReLU");
    final dnnl_primitive_attr attributes = new dnnl_primitive_attr();
    Dnnl.check(dnnl_primitive_attr_create(attributes), "creating attributes");
    Dnnl.check(dnnl_primitive_attr_set_post_ops(attributes, postOps), "setting post-ops");
    dnnl_post_ops_destroy(postOps);
    return attributes;
  }

  /**
   * The backward pass of a ReLU whose output is {@code output}: writes the gradient before it into
   * {@code into}.
   */
  static Step reluBackward(Scope scope, FusedRelu relu, Memory output, Memory diff, Memory into) {
    final dnnl_eltwise_desc_t forward = new dnnl_eltwise_desc_t();
    Dnnl.check(
        dnnl_eltwise_forward_desc_init(
            forward,
            dnnl_forward_training,
            dnnl_eltwise_relu_use_dst_for_bwd,
            output.md,
            relu.slope(),
            0f),
        "ReLU forward");
    final dnnl_primitive_desc hint = scope.describe(forward, null, null, "ReLU");
    final dnnl_eltwise_desc_t backward = new dnnl_eltwise_desc_t();
    Dnnl.check(
        dnnl_eltwise_backward_desc_init(
            backward, dnnl_eltwise_relu_use_dst_for_bwd, diff.md, output.md, relu.slope(), 0f),
        "ReLU backward");
    final dnnl_primitive_desc pd = scope.describe(backward, null, hint, "ReLU backward");
    return scope.step(
        pd,
        new int[] {DNNL_ARG_DST, DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_SRC},
        new Memory[] {output, diff, into},
        "ReLU backward");
  }

  /** A memory in {@code md} filled from {@code view} before each use, unless they coincide. */
  static Memory weightsIn(
      Plan plan, dnnl_memory_desc_t md, dnnl_memory_desc_t viewMd, INDArray view, List<Action> to) {
    return plan.as(md, to, plan.scope.wrap(viewMd, Dnnl.address(view)));
  }

  /**
   * The gradient of a layer's input from the gradient of its output: weights in the layout the
   * backward primitive wants (the forward's when they agree), the result written where {@link
   * Plan#diffTarget} says.
   *
   * @param images where the primitive computes a flattened input's gradient, the plain images it
   *     lies in (reordered from there into the input's gradient); else null
   */
  static void backwardData(
      Plan plan,
      List<Action> back,
      dnnl_primitive_desc bwdData,
      Memory forwardWeights,
      dnnl_memory_desc_t viewMd,
      INDArray view,
      Memory diffDst,
      Tensor in,
      dnnl_memory_desc_t images,
      String name) {
    final dnnl_memory_desc_t weightsMd = plan.scope.query(bwdData, dnnl_query_weights_md);
    final Memory weights =
        Dnnl.same(weightsMd, forwardWeights.md)
            ? forwardWeights
            : weightsIn(plan, weightsMd, viewMd, view, back);
    final List<Action> accumulate = new ArrayList<>();
    final Memory target = plan.diffTarget(in, accumulate);
    final dnnl_memory_desc_t diffSrcMd = plan.scope.query(bwdData, dnnl_query_diff_src_md);
    // where the gradient lands before any reorder into the target, and the primitive's view of it
    final Memory landed =
        images != null
            ? plan.scope.allocate(images)
            : Dnnl.same(diffSrcMd, target.md) ? target : plan.scope.allocate(diffSrcMd);
    final Memory diffSrc = images != null ? plan.scope.wrap(diffSrcMd, landed.address()) : landed;
    back.add(
        plan.run(
            plan.scope.step(
                bwdData,
                new int[] {DNNL_ARG_DIFF_DST, DNNL_ARG_WEIGHTS, DNNL_ARG_DIFF_SRC},
                new Memory[] {diffDst, weights, diffSrc},
                name)));
    if (landed != target) {
      back.add(plan.run(plan.scope.reorder(landed, target)));
    }
    back.addAll(accumulate);
  }

  /**
   * The descriptor of the first layout oneDNN has a generated kernel for, trying {@code layouts} in
   * order (the last one's when every one falls to its reference code, correct but tens of times
   * slower).
   */
  static dnnl_primitive_desc firstKernel(
      List<dnnl_memory_desc_t> layouts,
      java.util.function.Function<dnnl_memory_desc_t, dnnl_primitive_desc> describe) {
    dnnl_primitive_desc pd = null;
    for (dnnl_memory_desc_t layout : layouts) {
      pd = describe.apply(layout);
      if (!Dnnl.isReference(pd)) {
        break;
      }
    }
    return pd;
  }

  /**
   * A convolution's forward primitive descriptor for a source and weights layout and type, ReLU
   * fused when asked; {@code dilates} in oneDNN's count (0 for adjacent taps).
   */
  static dnnl_primitive_desc convolutionForward(
      Scope scope,
      dnnl_memory_desc_t src,
      dnnl_memory_desc_t weights,
      dnnl_memory_desc_t biasMd,
      long[] outDims,
      long[] strides,
      long[] dilates,
      long[] padL,
      long[] padR,
      FusedRelu relu,
      String name) {
    final dnnl_convolution_desc_t fwdDesc = new dnnl_convolution_desc_t();
    Dnnl.check(
        dnnl_dilated_convolution_forward_desc_init(
            fwdDesc,
            dnnl_forward_training,
            dnnl_convolution_direct,
            src,
            weights,
            biasMd,
            Dnnl.md(outDims, dnnl_format_tag_any),
            strides,
            dilates,
            padL,
            padR),
        "convolution " + name);
    return describeWithRelu(scope, fwdDesc, relu, "convolution " + name);
  }

  static void pool(
      Plan plan,
      List<Action> forward,
      List<Action> back,
      Op op,
      Tensor in,
      long[] outDims,
      int algorithm,
      long[] kernel,
      long[] strides,
      long[] padL,
      long[] padR) {
    final Scope scope = plan.scope;
    final long[] dilation = {0, 0};
    final dnnl_pooling_v2_desc_t fwdDesc = new dnnl_pooling_v2_desc_t();
    Dnnl.check(
        dnnl_pooling_v2_forward_desc_init(
            fwdDesc,
            dnnl_forward_training,
            algorithm,
            in.data.md,
            Dnnl.md(outDims, dnnl_format_tag_any),
            strides,
            kernel,
            dilation,
            padL,
            padR),
        "pooling " + op.name);
    final dnnl_primitive_desc fwd = scope.describe(fwdDesc, null, null, "pooling");
    final Memory dst = scope.allocate(scope.query(fwd, dnnl_query_dst_md));
    final dnnl_memory_desc_t workspaceMd = scope.query(fwd, dnnl_query_workspace_md);
    final Memory workspace = algorithm == dnnl_pooling_max ? scope.allocate(workspaceMd) : null;
    forward.add(
        plan.run(
            scope.step(
                fwd,
                new int[] {DNNL_ARG_SRC, DNNL_ARG_DST, DNNL_ARG_WORKSPACE},
                new Memory[] {in.data, dst, workspace},
                op.name)));
    final Tensor out = plan.output(op.name, outDims, dst);
    if (!in.needsDiff) {
      return;
    }
    final dnnl_pooling_v2_desc_t bwdDesc = new dnnl_pooling_v2_desc_t();
    Dnnl.check(
        dnnl_pooling_v2_backward_desc_init(
            bwdDesc, algorithm, in.data.md, dst.md, strides, kernel, dilation, padL, padR),
        "pooling backward " + op.name);
    final dnnl_primitive_desc bwd = scope.describe(bwdDesc, null, fwd, "pooling backward");
    final List<Action> accumulate = new ArrayList<>();
    final Memory target = plan.diffTarget(in, accumulate);
    back.add(
        plan.run(
            scope.step(
                bwd,
                new int[] {DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_SRC, DNNL_ARG_WORKSPACE},
                new Memory[] {out.diff, target, workspace},
                op.name)));
    back.addAll(accumulate);
  }
}
