package io.lockstep.worker.engine;

import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_BIAS;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_DIFF_BIAS;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_DIFF_DST;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_DIFF_WEIGHTS;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_DST;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_SRC;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_WEIGHTS;
import static org.bytedeco.dnnl.global.dnnl.dnnl_convolution_direct;
import static org.bytedeco.dnnl.global.dnnl.dnnl_dilated_convolution_backward_data_desc_init;
import static org.bytedeco.dnnl.global.dnnl.dnnl_dilated_convolution_backward_weights_desc_init;
import static org.bytedeco.dnnl.global.dnnl.dnnl_format_tag_any;
import static org.bytedeco.dnnl.global.dnnl.dnnl_query_diff_dst_md;
import static org.bytedeco.dnnl.global.dnnl.dnnl_query_diff_weights_md;
import static org.bytedeco.dnnl.global.dnnl.dnnl_query_dst_md;
import static org.bytedeco.dnnl.global.dnnl.dnnl_query_src_md;
import static org.bytedeco.dnnl.global.dnnl.dnnl_query_weights_md;

import io.lockstep.models.ModelZoo;
import io.lockstep.worker.engine.Dnnl.Memory;
import io.lockstep.worker.engine.Dnnl.Scope;
import io.lockstep.worker.engine.Dnnl.Step;
import java.util.List;
import java.util.Map;
import org.bytedeco.dnnl.dnnl_convolution_desc_t;
import org.bytedeco.dnnl.dnnl_memory_desc_t;
import org.bytedeco.dnnl.dnnl_primitive_desc;
import org.deeplearning4j.nn.api.Layer;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * A 2D convolution, dilated or not, its bias and a fused ReLU or leaky ReLU; grouped when it is
 * depthwise (one group per input channel, {@code depthMultiplier} outputs each).
 */
final class Conv extends Op {
  private final Layer layer;
  private final boolean depthwise;
  private final long outChannels;
  private final int[] kernel;
  private final int[] stride;
  private final int[] padding;

  /** Deeplearning4j's: 1 for adjacent taps (oneDNN counts the gaps between them, 0). */
  private final int[] dilation;

  private final boolean bias;

  /** Null without one. */
  private final FusedRelu relu;

  Conv(
      String name,
      String input,
      Layer layer,
      long outChannels,
      int[] kernel,
      int[] stride,
      int[] padding,
      int[] dilation,
      boolean bias,
      FusedRelu relu,
      boolean depthwise) {
    super(name, List.of(input));
    this.layer = layer;
    this.depthwise = depthwise;
    this.outChannels = outChannels;
    this.kernel = kernel;
    this.stride = stride;
    this.padding = padding;
    this.dilation = dilation;
    this.bias = bias;
    this.relu = relu;
  }

  @Override
  void build(Plan plan, List<Action> forward, List<Action> back) {
    final Scope scope = plan.scope;
    final Tensor in = plan.tensor(inputs.get(0));
    final long n = in.dims[0];
    final long inChannels = in.dims[1];
    checkInputs(layer, inChannels, name, "channels");
    // a dilated kernel spans (k - 1) d + 1 pixels
    final long outH =
        outputSize(in.dims[2], (kernel[0] - 1) * dilation[0] + 1, stride[0], padding[0]);
    final long outW =
        outputSize(in.dims[3], (kernel[1] - 1) * dilation[1] + 1, stride[1], padding[1]);
    final long[] outDims = {n, outChannels, outH, outW};
    // depthwise: groups of one input channel; oneDNN's [groups, out/group, in/group, kh, kw]
    final long[] weightDims =
        depthwise
            ? new long[] {inChannels, outChannels / inChannels, 1, kernel[0], kernel[1]}
            : new long[] {outChannels, inChannels, kernel[0], kernel[1]};
    final long[] strides = {stride[0], stride[1]};
    final long[] dilates = {dilation[0] - 1, dilation[1] - 1};
    final long[] padL = {padding[0], padding[1]};
    // both sides padded alike, as outputSize assumes; rows no window reads get a zero gradient
    final long[] padR = padL;
    final INDArray w = layer.getParam("W");
    final INDArray b = bias ? layer.getParam("b") : null;
    final Map<String, INDArray> grads = ModelZoo.gradientViews(layer);
    final dnnl_memory_desc_t wViewMd = Dnnl.md(weightDims, weightStrides(w));
    final dnnl_memory_desc_t biasMd = bias ? vectorMd(b) : null;
    // The previous layer's layout is kept, unless oneDNN has no kernel for it (channels that
    // are not a multiple of the block, as 6 in the CIFAR LeNet): then the convolution takes
    // the layout it prefers, through a reorder. The network's input is always reordered.
    // In bfloat16 each primitive with a bfloat16 kernel reads bfloat16 copies of its input,
    // weights and output gradient, and writes float32 (Plan.kernel).
    final dnnl_memory_desc_t srcAny = Dnnl.md(in.dims, dnnl_format_tag_any);
    final dnnl_memory_desc_t weightsAny = Dnnl.md(weightDims, dnnl_format_tag_any);
    final dnnl_primitive_desc fwd =
        plan.kernel(
            in.needsDiff ? List.of(in.data.md, srcAny) : List.of(srcAny),
            (src, type) ->
                convolutionForward(
                    scope,
                    Dnnl.withType(src, type),
                    Dnnl.withType(weightsAny, type),
                    biasMd,
                    outDims,
                    strides,
                    dilates,
                    padL,
                    padR,
                    relu,
                    name));
    final Memory src = plan.as(scope.query(fwd, dnnl_query_src_md), forward, in.data);
    final Memory weights =
        weightsIn(plan, scope.query(fwd, dnnl_query_weights_md), wViewMd, w, forward);
    final Memory dst = scope.allocate(scope.query(fwd, dnnl_query_dst_md));
    final Step step =
        scope.step(
            fwd,
            new int[] {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_BIAS, DNNL_ARG_DST},
            new Memory[] {src, weights, bias ? scope.wrap(biasMd, Dnnl.address(b)) : null, dst},
            name);
    forward.add(plan.run(step));
    final Tensor out = plan.output(name, outDims, dst);

    // backward: ReLU, then weights (reported), then data
    Memory diffDst = out.diff;
    if (relu != null) {
      final Memory beforeRelu = scope.allocate(dst.md);
      back.add(plan.run(reluBackward(scope, relu, dst, out.diff, beforeRelu)));
      diffDst = beforeRelu;
    }
    // the output gradient as it is, unless oneDNN has only reference code for it (with
    // AVX-512, a plain source of 6 channels and a blocked gradient: the CIFAR LeNet's conv2);
    // then in the layout oneDNN prefers, through a reorder
    final dnnl_primitive_desc bwdWeights =
        plan.kernel(
            List.of(dst.md, Dnnl.md(outDims, dnnl_format_tag_any)),
            (diffDstLayout, type) -> {
              final dnnl_convolution_desc_t bwdWeightsDesc = new dnnl_convolution_desc_t();
              Dnnl.check(
                  dnnl_dilated_convolution_backward_weights_desc_init(
                      bwdWeightsDesc,
                      dnnl_convolution_direct,
                      Dnnl.withType(srcAny, type),
                      weightsAny,
                      biasMd,
                      Dnnl.withType(diffDstLayout, type),
                      strides,
                      dilates,
                      padL,
                      padR),
                  "convolution backward weights " + name);
              return scope.describe(bwdWeightsDesc, null, fwd, "convolution backward weights");
            });
    final Memory weightsDiffDst =
        plan.as(scope.query(bwdWeights, dnnl_query_diff_dst_md), back, diffDst);
    // backward weights may want the source in another layout than forward (one input channel)
    final Memory weightsSrc =
        plan.as(scope.query(bwdWeights, dnnl_query_src_md), back, in.data, src);
    final INDArray gw = grads.get("W");
    final Memory gradW = scope.wrap(Dnnl.md(weightDims, weightStrides(gw)), Dnnl.address(gw));
    final dnnl_memory_desc_t diffWeightsMd = scope.query(bwdWeights, dnnl_query_diff_weights_md);
    final Memory diffWeights =
        Dnnl.same(diffWeightsMd, gradW.md) ? gradW : scope.allocate(diffWeightsMd);
    final Step weightsStep =
        scope.step(
            bwdWeights,
            new int[] {DNNL_ARG_SRC, DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_WEIGHTS, DNNL_ARG_DIFF_BIAS},
            new Memory[] {
              weightsSrc,
              weightsDiffDst,
              diffWeights,
              bias ? scope.wrap(vectorMd(grads.get("b")), Dnnl.address(grads.get("b"))) : null
            },
            name);
    back.add(plan.run(weightsStep));
    if (diffWeights != gradW) {
      back.add(plan.run(scope.reorder(diffWeights, gradW)));
    }
    plan.done(name, back);
    if (in.needsDiff) {
      // into the input gradient's layout where oneDNN has a kernel for it, else its own
      final dnnl_primitive_desc bwdData =
          plan.kernel(
              List.of(in.data.md, srcAny),
              (diffSrc, type) -> {
                final dnnl_convolution_desc_t bwdDataDesc = new dnnl_convolution_desc_t();
                Dnnl.check(
                    dnnl_dilated_convolution_backward_data_desc_init(
                        bwdDataDesc,
                        dnnl_convolution_direct,
                        diffSrc,
                        Dnnl.withType(weightsAny, type),
                        Dnnl.withType(dst.md, type),
                        strides,
                        dilates,
                        padL,
                        padR),
                    "convolution backward data " + name);
                return scope.describe(bwdDataDesc, null, fwd, "convolution backward data");
              });
      final Memory dataDiffDst =
          plan.as(scope.query(bwdData, dnnl_query_diff_dst_md), back, weightsDiffDst, diffDst);
      backwardData(plan, back, bwdData, weights, wViewMd, w, dataDiffDst, in, null, name);
    }
  }

  /**
   * Strides of Deeplearning4j's weight array in oneDNN's dimension order: a convolution's W is
   * {@code [out, in, kh, kw]} in both; a depthwise one's is {@code [kh, kw, in, multiplier]} there
   * and {@code [in, multiplier, 1, kh, kw]} here.
   */
  private long[] weightStrides(INDArray array) {
    final long[] s = array.stride();
    return depthwise ? new long[] {s[2], s[3], 1, s[0], s[1]} : s;
  }
}
