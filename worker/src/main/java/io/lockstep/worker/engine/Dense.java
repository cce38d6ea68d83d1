package io.lockstep.worker.engine;

import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_BIAS;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_DIFF_BIAS;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_DIFF_DST;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_DIFF_WEIGHTS;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_DST;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_SRC;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_WEIGHTS;
import static org.bytedeco.dnnl.global.dnnl.dnnl_ab;
import static org.bytedeco.dnnl.global.dnnl.dnnl_format_tag_any;
import static org.bytedeco.dnnl.global.dnnl.dnnl_forward_training;
import static org.bytedeco.dnnl.global.dnnl.dnnl_inner_product_backward_data_desc_init;
import static org.bytedeco.dnnl.global.dnnl.dnnl_inner_product_backward_weights_desc_init;
import static org.bytedeco.dnnl.global.dnnl.dnnl_inner_product_forward_desc_init;
import static org.bytedeco.dnnl.global.dnnl.dnnl_matmul_desc_init;
import static org.bytedeco.dnnl.global.dnnl.dnnl_nchw;
import static org.bytedeco.dnnl.global.dnnl.dnnl_nhwc;
import static org.bytedeco.dnnl.global.dnnl.dnnl_query_diff_dst_md;
import static org.bytedeco.dnnl.global.dnnl.dnnl_query_diff_weights_md;
import static org.bytedeco.dnnl.global.dnnl.dnnl_query_dst_md;
import static org.bytedeco.dnnl.global.dnnl.dnnl_query_src_md;
import static org.bytedeco.dnnl.global.dnnl.dnnl_query_weights_md;

import io.lockstep.models.ModelZoo;
import io.lockstep.worker.engine.Dnnl.Memory;
import io.lockstep.worker.engine.Dnnl.Scope;
import java.util.List;
import java.util.Map;
import org.bytedeco.dnnl.dnnl_inner_product_desc_t;
import org.bytedeco.dnnl.dnnl_matmul_desc_t;
import org.bytedeco.dnnl.dnnl_memory_desc_t;
import org.bytedeco.dnnl.dnnl_primitive_desc;
import org.deeplearning4j.nn.api.Layer;
import org.deeplearning4j.nn.conf.CNN2DFormat;
import org.nd4j.linalg.api.ndarray.INDArray;

/** A dense layer, its bias and a fused ReLU. */
class Dense extends Op {
  final Layer layer;
  final long outputs;
  final boolean bias;

  /** Null without one. */
  final FusedRelu relu;

  final CNN2DFormat flattening;

  Dense(
      String name,
      String input,
      Layer layer,
      long outputs,
      boolean bias,
      FusedRelu relu,
      CNN2DFormat flattening) {
    super(name, List.of(input));
    this.layer = layer;
    this.outputs = outputs;
    this.bias = bias;
    this.relu = relu;
    this.flattening = flattening;
  }

  /**
   * Deeplearning4j's {@code [inputs, outputs]} weights as oneDNN's {@code [outputs, inputs...]},
   * with the input dimensions in the order the preprocessor flattened them.
   */
  dnnl_memory_desc_t weightsMd(long[] inDims, INDArray view) {
    final long rows = view.stride(0);
    final long cols = view.stride(1);
    if (inDims.length == 2) {
      return Dnnl.md(new long[] {outputs, inDims[1]}, new long[] {cols, rows});
    }
    final long c = inDims[1];
    final long h = inDims[2];
    final long w = inDims[3];
    final long[] dims = {outputs, c, h, w};
    return flattening == CNN2DFormat.NHWC
        ? Dnnl.md(dims, new long[] {cols, rows, rows * w * c, rows * c})
        : Dnnl.md(dims, new long[] {cols, rows * h * w, rows * w, rows});
  }

  /** The destination layout: chosen by oneDNN, or plain where Java reads it. */
  dnnl_memory_desc_t destination(long n) {
    return Dnnl.md(new long[] {n, outputs}, dnnl_format_tag_any);
  }

  /** Appends what runs between this layer's forward primitive and its backward ones. */
  Memory afterForward(Plan plan, Memory dst, Tensor out, List<Action> forward) {
    return out.diff;
  }

  @Override
  void build(Plan plan, List<Action> forward, List<Action> back) {
    final Scope scope = plan.scope;
    final Tensor in = plan.tensor(inputs.get(0));
    final long n = in.dims[0];
    long inputs = 1;
    for (int d = 1; d < in.dims.length; d++) {
      inputs *= in.dims[d];
    }
    checkInputs(layer, inputs, name, "inputs");
    final INDArray w = layer.getParam("W");
    final INDArray b = bias ? layer.getParam("b") : null;
    final Map<String, INDArray> grads = ModelZoo.gradientViews(layer);
    // In bfloat16 each primitive with a bfloat16 kernel reads bfloat16 copies of its input,
    // weights and output gradient, and writes float32 (Plan.kernel). oneDNN's bfloat16 inner
    // products take no images, so there they are flattened first, in the order Deeplearning4j's
    // preprocessor flattens them, and the input's gradient comes back through the same buffer.
    Memory source = in.data;
    dnnl_memory_desc_t images = null;
    if (plan.bf16() && in.dims.length == 4) {
      images = Dnnl.md(in.dims, flattening == CNN2DFormat.NHWC ? dnnl_nhwc : dnnl_nchw);
      final Memory plain = scope.allocate(images);
      forward.add(plan.run(scope.reorder(in.data, plain)));
      source = scope.wrap(Dnnl.md(new long[] {n, inputs}, dnnl_ab), plain.address());
    }
    final long[] srcDims = images != null ? new long[] {n, inputs} : in.dims;
    final dnnl_memory_desc_t wViewMd = weightsMd(srcDims, w);
    final long[] wDims = srcDims.clone();
    wDims[0] = outputs;
    final dnnl_memory_desc_t biasMd = bias ? vectorMd(b) : null;
    final dnnl_memory_desc_t weightsAny = Dnnl.md(wDims, dnnl_format_tag_any);
    final Memory input = source;
    final dnnl_primitive_desc fwd =
        plan.kernel(
            List.of(input.md),
            (srcLayout, type) -> {
              final dnnl_inner_product_desc_t fwdDesc = new dnnl_inner_product_desc_t();
              Dnnl.check(
                  dnnl_inner_product_forward_desc_init(
                      fwdDesc,
                      dnnl_forward_training,
                      Dnnl.withType(srcLayout, type),
                      Dnnl.withType(weightsAny, type),
                      biasMd,
                      destination(n)),
                  "dense " + name);
              return describeWithRelu(scope, fwdDesc, relu, "dense " + name);
            });
    final Memory weights;
    final Memory src;
    final Memory dst;
    final dnnl_primitive_desc matmul = plan.bf16() ? null : matmul(plan, input, in.dims, w, b);
    if (matmul != null) {
      // rows times the weights where Deeplearning4j keeps them: no copy of either
      src = input;
      weights = scope.wrap(wViewMd, Dnnl.address(w));
      dst = dstMemory(plan, Dnnl.md(new long[] {n, outputs}, dnnl_ab), n);
      forward.add(
          plan.run(
              scope.step(
                  matmul,
                  new int[] {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_BIAS, DNNL_ARG_DST},
                  new Memory[] {
                    plan.alias(input, scope.query(matmul, dnnl_query_src_md)),
                    scope.wrap(scope.query(matmul, dnnl_query_weights_md), Dnnl.address(w)),
                    bias
                        ? scope.wrap(scope.argument(matmul, DNNL_ARG_BIAS), Dnnl.address(b))
                        : null,
                    dst
                  },
                  name)));
    } else {
      weights = weightsIn(plan, scope.query(fwd, dnnl_query_weights_md), wViewMd, w, forward);
      src = plan.as(scope.query(fwd, dnnl_query_src_md), forward, input);
      dst = dstMemory(plan, scope.query(fwd, dnnl_query_dst_md), n);
      forward.add(
          plan.run(
              scope.step(
                  fwd,
                  new int[] {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_BIAS, DNNL_ARG_DST},
                  new Memory[] {
                    src, weights, bias ? scope.wrap(biasMd, Dnnl.address(b)) : null, dst
                  },
                  name)));
    }
    final Tensor out = plan.output(name, new long[] {n, outputs}, dst);
    Memory diffDst = afterForward(plan, dst, out, forward);
    if (relu != null) {
      final Memory beforeRelu = scope.allocate(dst.md);
      back.add(plan.run(reluBackward(scope, relu, dst, diffDst, beforeRelu)));
      diffDst = beforeRelu;
    }
    final INDArray gw = grads.get("W");
    final dnnl_memory_desc_t gradWMd = weightsMd(srcDims, gw);
    // Where the forward pass reads plain weights (oneDNN's GEMM, as for images flattened into the
    // layer), the weights' gradient is written where Deeplearning4j keeps it, in its own plain
    // order: no reorder of it each step (the seed perceptron's first layer: the reorder 0.16 ms of
    // a 0.40 ms weight gradient, 0.29 ms without). Blocked kernels (brgemm) keep their layout and
    // a reorder.
    final boolean plainWeights =
        !plan.bf16() && Dnnl.isPlain(scope.query(fwd, dnnl_query_weights_md));
    final List<dnnl_memory_desc_t> diffWeightLayouts =
        plainWeights ? List.of(gradWMd, weightsAny) : List.of(weightsAny);
    final dnnl_primitive_desc bwdWeights =
        firstKernel(
            diffWeightLayouts,
            diffWeightsLayout ->
                plan.kernel(
                    List.of(src.md, input.md),
                    (srcLayout, type) -> {
                      final dnnl_inner_product_desc_t bwdWeightsDesc =
                          new dnnl_inner_product_desc_t();
                      Dnnl.check(
                          dnnl_inner_product_backward_weights_desc_init(
                              bwdWeightsDesc,
                              Dnnl.withType(srcLayout, type),
                              diffWeightsLayout,
                              biasMd,
                              Dnnl.withType(dst.md, type)),
                          "dense backward weights " + name);
                      return scope.describe(bwdWeightsDesc, null, fwd, "dense backward weights");
                    }));
    final Memory weightsSrc = plan.as(scope.query(bwdWeights, dnnl_query_src_md), back, input, src);
    final Memory weightsDiffDst =
        plan.as(scope.query(bwdWeights, dnnl_query_diff_dst_md), back, diffDst);
    final Memory gradW = scope.wrap(gradWMd, Dnnl.address(gw));
    final dnnl_memory_desc_t diffWeightsMd = scope.query(bwdWeights, dnnl_query_diff_weights_md);
    final Memory diffWeights =
        Dnnl.same(diffWeightsMd, gradW.md) ? gradW : scope.allocate(diffWeightsMd);
    back.add(
        plan.run(
            scope.step(
                bwdWeights,
                new int[] {
                  DNNL_ARG_SRC, DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_WEIGHTS, DNNL_ARG_DIFF_BIAS
                },
                new Memory[] {
                  weightsSrc,
                  weightsDiffDst,
                  diffWeights,
                  bias ? scope.wrap(vectorMd(grads.get("b")), Dnnl.address(grads.get("b"))) : null
                },
                name)));
    if (diffWeights != gradW) {
      back.add(plan.run(scope.reorder(diffWeights, gradW)));
    }
    plan.done(name, back);
    if (in.needsDiff) {
      final dnnl_primitive_desc bwdData =
          plan.kernel(
              List.of(input.md),
              (diffSrc, type) -> {
                final dnnl_inner_product_desc_t bwdDataDesc = new dnnl_inner_product_desc_t();
                Dnnl.check(
                    dnnl_inner_product_backward_data_desc_init(
                        bwdDataDesc,
                        diffSrc,
                        Dnnl.withType(weightsAny, type),
                        Dnnl.withType(dst.md, type)),
                    "dense backward data " + name);
                return scope.describe(bwdDataDesc, null, fwd, "dense backward data");
              });
      final Memory dataDiffDst =
          plan.as(scope.query(bwdData, dnnl_query_diff_dst_md), back, weightsDiffDst, diffDst);
      backwardData(plan, back, bwdData, weights, wViewMd, w, dataDiffDst, in, images, name);
    }
  }

  /**
   * The forward pass as oneDNN's matmul of the input's rows by the weights where Deeplearning4j
   * keeps them ({@code [inputs, outputs]}, its strides), ReLU fused: where the input lies plain in
   * the order Deeplearning4j's preprocessor flattens it, and oneDNN has a generated kernel for it.
   * The inner product would read a reordered copy of the weights made each step: for the seed
   * perceptron's first layer (393,216 weights, batch 64) 0.20 ms for the product and 0.22 for the
   * copy, against 0.20 for the matmul alone.
   *
   * @return the matmul's descriptor, or null where the inner product must run
   */
  private dnnl_primitive_desc matmul(
      Plan plan, Memory input, long[] inDims, INDArray w, INDArray b) {
    final long n = inDims[0];
    final long inputs = w.size(0);
    final dnnl_memory_desc_t rows = Dnnl.plain(new long[] {n, inputs});
    final dnnl_memory_desc_t flattened =
        inDims.length == 2
            ? rows
            : flattening == CNN2DFormat.NHWC ? Dnnl.md(inDims, dnnl_nhwc) : Dnnl.plain(inDims);
    if (!Dnnl.same(input.md, flattened)) {
      return null;
    }
    final dnnl_memory_desc_t weights =
        Dnnl.md(new long[] {inputs, outputs}, new long[] {w.stride(0), w.stride(1)});
    final dnnl_memory_desc_t biasRow =
        bias
            ? Dnnl.md(
                new long[] {1, outputs},
                new long[] {outputs * b.stride(b.rank() - 1), b.stride(b.rank() - 1)})
            : null;
    final dnnl_matmul_desc_t desc = new dnnl_matmul_desc_t();
    Dnnl.check(
        dnnl_matmul_desc_init(
            desc, rows, weights, biasRow, Dnnl.md(new long[] {n, outputs}, dnnl_ab)),
        "dense " + name);
    final dnnl_primitive_desc pd = describeWithRelu(plan.scope, desc, relu, "dense " + name);
    return Dnnl.isReference(pd) ? null : pd;
  }

  Memory dstMemory(Plan plan, dnnl_memory_desc_t md, long n) {
    return plan.scope.allocate(md); // n: the batch, for layouts Java reads
  }
}
