package io.lockstep.worker.engine;

import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_BIAS;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_DIFF_BIAS;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_DIFF_DST_LAYER;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_DIFF_SRC_ITER;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_DIFF_SRC_ITER_C;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_DIFF_SRC_LAYER;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_DIFF_WEIGHTS_ITER;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_DIFF_WEIGHTS_LAYER;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_DST_LAYER;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_SRC_ITER;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_SRC_ITER_C;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_SRC_LAYER;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_WEIGHTS_ITER;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_WEIGHTS_LAYER;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_WORKSPACE;
import static org.bytedeco.dnnl.global.dnnl.dnnl_backward;
import static org.bytedeco.dnnl.global.dnnl.dnnl_format_tag_any;
import static org.bytedeco.dnnl.global.dnnl.dnnl_forward_training;
import static org.bytedeco.dnnl.global.dnnl.dnnl_ldgo;
import static org.bytedeco.dnnl.global.dnnl.dnnl_ldigo;
import static org.bytedeco.dnnl.global.dnnl.dnnl_ldnc;
import static org.bytedeco.dnnl.global.dnnl.dnnl_lstm_backward_desc_init;
import static org.bytedeco.dnnl.global.dnnl.dnnl_lstm_forward_desc_init;
import static org.bytedeco.dnnl.global.dnnl.dnnl_query_workspace_md;
import static org.bytedeco.dnnl.global.dnnl.dnnl_rnn_flags_undef;
import static org.bytedeco.dnnl.global.dnnl.dnnl_tnc;
import static org.bytedeco.dnnl.global.dnnl.dnnl_unidirectional_left2right;

import io.lockstep.models.ModelZoo;
import io.lockstep.worker.engine.Dnnl.Memory;
import io.lockstep.worker.engine.Dnnl.Scope;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.bytedeco.dnnl.dnnl_memory_desc_t;
import org.bytedeco.dnnl.dnnl_primitive_desc;
import org.bytedeco.dnnl.dnnl_rnn_desc_t;
import org.deeplearning4j.nn.api.Layer;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * Deeplearning4j's {@code LSTM} (no peepholes, tanh, sigmoid gates, a zero initial state) over a
 * whole sequence, as oneDNN's LSTM primitive: {@code c = f * c' + i * g}, {@code h = o * tanh(c)}.
 * Deeplearning4j keeps the four gates' columns of its weights {@code W [in, 4 x hidden]}, {@code RW
 * [hidden, 4 x hidden]} and bias {@code b [1, 4 x hidden]} in the order g (the cell's input), f, o,
 * i; oneDNN in the order i, f, g, o: each step the gates' blocks are reordered into oneDNN's
 * layout, and the weights' gradients back into Deeplearning4j's gradient views.
 *
 * <p>Sequences are {@code [n, channels, length]} as Deeplearning4j's, laid out as oneDNN's {@code
 * tnc}: step by step, each sample's vector ({@link #sequenceMd}).
 */
final class Lstm extends Op {
  /** oneDNN's gate i, f, g, o: the block of Deeplearning4j's columns that holds it. */
  private static final int[] DL4J_BLOCK = {3, 1, 0, 2};

  private final Layer layer;
  private final long inputs;
  private final long hidden;

  Lstm(String name, String input, Layer layer, long inputs, long hidden) {
    super(name, List.of(input));
    this.layer = layer;
    this.inputs = inputs;
    this.hidden = hidden;
  }

  /**
   * A sequence {@code [n, channels, length]} over a buffer laid out {@code [length, n, channels]}.
   */
  static dnnl_memory_desc_t sequenceMd(long n, long channels, long length) {
    return Dnnl.md(new long[] {n, channels, length}, new long[] {channels, 1, n * channels});
  }

  @Override
  void build(Plan plan, List<Action> forward, List<Action> back) {
    final Scope scope = plan.scope;
    final Tensor in = plan.tensor(super.inputs.get(0));
    final long n = in.dims[0];
    checkInputs(layer, in.dims[1], name, "channels per step");
    final long length = in.dims[2];
    final Memory sequence = plan.as(sequenceMd(n, inputs, length), forward, in.data);
    final dnnl_memory_desc_t srcMd = Dnnl.md(new long[] {length, n, inputs}, dnnl_tnc);
    final Memory src = scope.wrap(srcMd, sequence.address());
    final dnnl_memory_desc_t dstMd = Dnnl.md(new long[] {length, n, hidden}, dnnl_tnc);
    final long[] layerDims = {1, 1, inputs, 4, hidden};
    final long[] iterDims = {1, 1, hidden, 4, hidden};
    final long[] biasDims = {1, 1, 4, hidden};
    final dnnl_memory_desc_t biasMd = Dnnl.md(biasDims, dnnl_ldgo);
    // the weights' layouts (and their gradients') as each primitive prefers them
    final dnnl_memory_desc_t layerAny = Dnnl.md(layerDims, dnnl_format_tag_any);
    final dnnl_memory_desc_t iterAny = Dnnl.md(iterDims, dnnl_format_tag_any);
    // The initial hidden and cell state, zero, as a memory of their own (never written): without
    // one, oneDNN 2.5's backward pass left the recurrent weights' gradient 2% off Deeplearning4j's
    // in double precision, though its documentation reads a missing state as zero.
    final dnnl_memory_desc_t stateMd = Dnnl.md(new long[] {1, 1, n, hidden}, dnnl_ldnc);
    final Memory zeroState = scope.allocate(stateMd);
    plan.zero(zeroState).run();

    final dnnl_rnn_desc_t fwdDesc = new dnnl_rnn_desc_t();
    Dnnl.check(
        dnnl_lstm_forward_desc_init(
            fwdDesc,
            dnnl_forward_training,
            dnnl_unidirectional_left2right,
            srcMd,
            stateMd,
            stateMd,
            layerAny,
            iterAny,
            biasMd,
            dstMd,
            null,
            null,
            dnnl_rnn_flags_undef),
        "LSTM " + name);
    final dnnl_primitive_desc fwd = scope.describe(fwdDesc, null, null, "LSTM " + name);

    // the parameters in oneDNN's gate order, plain, gathered from Deeplearning4j's each step
    final Memory weightsLayer = scope.allocate(Dnnl.md(layerDims, dnnl_ldigo));
    final Memory weightsIter = scope.allocate(Dnnl.md(iterDims, dnnl_ldigo));
    final Memory bias = scope.allocate(biasMd);
    gather(plan, forward, layer.getParam("W"), weightsLayer, inputs);
    gather(plan, forward, layer.getParam("RW"), weightsIter, hidden);
    gather(plan, forward, layer.getParam("b"), bias, 1);
    final Memory fwdLayer =
        plan.as(scope.argument(fwd, DNNL_ARG_WEIGHTS_LAYER), forward, weightsLayer);
    final Memory fwdIter =
        plan.as(scope.argument(fwd, DNNL_ARG_WEIGHTS_ITER), forward, weightsIter);
    final Memory dst = scope.allocate(dstMd);
    final Memory workspace = scope.allocate(scope.query(fwd, dnnl_query_workspace_md));
    forward.add(
        plan.run(
            scope.step(
                fwd,
                new int[] {
                  DNNL_ARG_SRC_LAYER,
                  DNNL_ARG_SRC_ITER,
                  DNNL_ARG_SRC_ITER_C,
                  DNNL_ARG_WEIGHTS_LAYER,
                  DNNL_ARG_WEIGHTS_ITER,
                  DNNL_ARG_BIAS,
                  DNNL_ARG_DST_LAYER,
                  DNNL_ARG_WORKSPACE
                },
                new Memory[] {src, zeroState, zeroState, fwdLayer, fwdIter, bias, dst, workspace},
                "LSTM " + name)));
    final Tensor out =
        plan.output(
            name,
            new long[] {n, hidden, length},
            scope.wrap(sequenceMd(n, hidden, length), dst.address()));

    final dnnl_rnn_desc_t bwdDesc = new dnnl_rnn_desc_t();
    Dnnl.check(
        dnnl_lstm_backward_desc_init(
            bwdDesc,
            dnnl_backward,
            dnnl_unidirectional_left2right,
            srcMd,
            stateMd,
            stateMd,
            layerAny,
            iterAny,
            biasMd,
            dstMd,
            null,
            null,
            srcMd,
            stateMd,
            stateMd,
            layerAny,
            iterAny,
            biasMd,
            dstMd,
            null,
            null,
            dnnl_rnn_flags_undef),
        "LSTM backward " + name);
    final dnnl_primitive_desc bwd = scope.describe(bwdDesc, null, fwd, "LSTM backward " + name);
    final Memory bwdLayer =
        plan.as(scope.argument(bwd, DNNL_ARG_WEIGHTS_LAYER), back, fwdLayer, weightsLayer);
    final Memory bwdIter =
        plan.as(scope.argument(bwd, DNNL_ARG_WEIGHTS_ITER), back, fwdIter, weightsIter);
    // oneDNN 2.5 adds the weights' gradients to what their memories hold (later versions have a
    // flag to overwrite them): they start each step at zero
    final Memory diffLayer = scope.allocate(scope.argument(bwd, DNNL_ARG_DIFF_WEIGHTS_LAYER));
    final Memory diffIter = scope.allocate(scope.argument(bwd, DNNL_ARG_DIFF_WEIGHTS_ITER));
    final Memory diffBias = scope.allocate(scope.argument(bwd, DNNL_ARG_DIFF_BIAS));
    // the initial state's gradient, which nothing reads
    final Memory diffState = scope.allocate(stateMd);
    back.add(plan.zero(diffLayer));
    back.add(plan.zero(diffIter));
    back.add(plan.zero(diffBias));
    final List<Action> accumulate = new ArrayList<>();
    final Memory diffSrc;
    Memory landed = null;
    if (in.needsDiff) {
      final Memory target = plan.diffTarget(in, accumulate);
      if (Dnnl.same(target.md, sequence.md)) {
        diffSrc = scope.wrap(srcMd, target.address());
      } else {
        diffSrc = scope.allocate(srcMd);
        landed = target;
      }
    } else {
      diffSrc = scope.allocate(srcMd);
    }
    back.add(
        plan.run(
            scope.step(
                bwd,
                new int[] {
                  DNNL_ARG_SRC_LAYER,
                  DNNL_ARG_SRC_ITER,
                  DNNL_ARG_SRC_ITER_C,
                  DNNL_ARG_WEIGHTS_LAYER,
                  DNNL_ARG_WEIGHTS_ITER,
                  DNNL_ARG_BIAS,
                  DNNL_ARG_DST_LAYER,
                  DNNL_ARG_DIFF_DST_LAYER,
                  DNNL_ARG_WORKSPACE,
                  DNNL_ARG_DIFF_SRC_LAYER,
                  DNNL_ARG_DIFF_SRC_ITER,
                  DNNL_ARG_DIFF_SRC_ITER_C,
                  DNNL_ARG_DIFF_WEIGHTS_LAYER,
                  DNNL_ARG_DIFF_WEIGHTS_ITER,
                  DNNL_ARG_DIFF_BIAS
                },
                new Memory[] {
                  src,
                  zeroState,
                  zeroState,
                  bwdLayer,
                  bwdIter,
                  bias,
                  dst,
                  scope.wrap(dstMd, out.diff.address()),
                  workspace,
                  diffSrc,
                  diffState,
                  diffState,
                  diffLayer,
                  diffIter,
                  diffBias
                },
                "LSTM backward " + name)));
    final Map<String, INDArray> grads = ModelZoo.gradientViews(layer);
    scatter(
        plan,
        back,
        plainCopy(plan, back, diffLayer, layerDims, dnnl_ldigo),
        grads.get("W"),
        inputs);
    scatter(
        plan, back, plainCopy(plan, back, diffIter, iterDims, dnnl_ldigo), grads.get("RW"), hidden);
    scatter(plan, back, plainCopy(plan, back, diffBias, biasDims, dnnl_ldgo), grads.get("b"), 1);
    plan.done(name, back);
    if (landed != null) {
      back.add(plan.run(scope.reorder(scope.wrap(sequence.md, diffSrc.address()), landed)));
    }
    back.addAll(accumulate);
  }

  /** {@code memory} in oneDNN's plain layout {@code tag}: itself, or a copy a reorder fills. */
  private static Memory plainCopy(
      Plan plan, List<Action> back, Memory memory, long[] dims, int tag) {
    return plan.as(Dnnl.md(dims, tag), back, memory);
  }

  /**
   * Appends the reorders that copy each gate's columns of Deeplearning4j's {@code [rows, 4 x
   * hidden]} array into oneDNN's plain layout ({@code ldigo}, or {@code ldgo} for the bias).
   */
  private void gather(Plan plan, List<Action> to, INDArray dl4j, Memory oneDnn, long rows) {
    for (int gate = 0; gate < 4; gate++) {
      final Memory from = dl4jGate(plan.scope, dl4j, gate, rows, isBias(oneDnn));
      final Memory into = oneDnnGate(plan.scope, oneDnn, gate, rows);
      to.add(plan.run(plan.scope.reorder(from, into)));
    }
  }

  /** The reverse of {@link #gather}: each gate's gradient into Deeplearning4j's columns. */
  private void scatter(Plan plan, List<Action> to, Memory oneDnn, INDArray dl4j, long rows) {
    for (int gate = 0; gate < 4; gate++) {
      final Memory from = oneDnnGate(plan.scope, oneDnn, gate, rows);
      final Memory into = dl4jGate(plan.scope, dl4j, gate, rows, isBias(oneDnn));
      to.add(plan.run(plan.scope.reorder(from, into)));
    }
  }

  /** Whether a plain memory of oneDNN's is a bias ({@code ldgo}) rather than weights. */
  private static boolean isBias(Memory plain) {
    return plain.md.ndims() == 4;
  }

  /** The dimensions of one gate of a weights ({@code [1, 1, rows, 1, hidden]}) or bias array. */
  private long[] gateDims(long rows, boolean isBias) {
    return isBias ? new long[] {1, 1, 1, hidden} : new long[] {1, 1, rows, 1, hidden};
  }

  /** oneDNN's gate {@code gate} of a plain {@code ldigo} weights or {@code ldgo} bias memory. */
  private Memory oneDnnGate(Scope scope, Memory plain, int gate, long rows) {
    final boolean isBias = isBias(plain);
    final long all = rows * 4 * hidden;
    final long[] strides =
        isBias ? new long[] {all, all, hidden, 1} : new long[] {all, all, 4 * hidden, hidden, 1};
    return scope.wrap(
        Dnnl.md(gateDims(rows, isBias), strides), plain.address() + gate * hidden * Float.BYTES);
  }

  /** The columns of oneDNN's gate {@code gate} in Deeplearning4j's {@code [rows, 4 x hidden]}. */
  private Memory dl4jGate(Scope scope, INDArray array, int gate, long rows, boolean isBias) {
    // the bias may be a vector
    final long colStride = array.stride(array.rank() - 1);
    final long rowStride = array.rank() == 2 ? array.stride(0) : array.length() * colStride;
    final long all = array.length() * Math.max(rowStride, colStride);
    final long[] strides =
        isBias
            ? new long[] {all, all, hidden * colStride, colStride}
            : new long[] {all, all, rowStride, hidden * colStride, colStride};
    return scope.wrap(
        Dnnl.md(gateDims(rows, isBias), strides),
        Dnnl.address(array) + DL4J_BLOCK[gate] * hidden * colStride * Float.BYTES);
  }
}
