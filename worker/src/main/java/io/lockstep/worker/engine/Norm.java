package io.lockstep.worker.engine;

import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_DIFF_DST;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_DIFF_SCALE;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_DIFF_SHIFT;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_DIFF_SRC;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_DST;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_MEAN;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_SCALE;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_SHIFT;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_SRC;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_VARIANCE;
import static org.bytedeco.dnnl.global.dnnl.dnnl_a;
import static org.bytedeco.dnnl.global.dnnl.dnnl_backward;
import static org.bytedeco.dnnl.global.dnnl.dnnl_batch_normalization_backward_desc_init;
import static org.bytedeco.dnnl.global.dnnl.dnnl_batch_normalization_forward_desc_init;
import static org.bytedeco.dnnl.global.dnnl.dnnl_forward_training;
import static org.bytedeco.dnnl.global.dnnl.dnnl_use_scale;
import static org.bytedeco.dnnl.global.dnnl.dnnl_use_shift;

import io.lockstep.models.ModelZoo;
import io.lockstep.worker.engine.Dnnl.Memory;
import io.lockstep.worker.engine.Dnnl.Scope;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.bytedeco.dnnl.dnnl_batch_normalization_desc_t;
import org.bytedeco.dnnl.dnnl_memory_desc_t;
import org.bytedeco.dnnl.dnnl_primitive_desc;
import org.bytedeco.javacpp.FloatPointer;
import org.deeplearning4j.nn.api.Layer;
import org.nd4j.linalg.api.ndarray.INDArray;

/** BatchNorm in training: batch statistics, trainable scale and shift, running statistics. */
final class Norm extends Op {
  private static final double ONE_ON_2LOGE_10 = 1.0 / (2 * Math.log(10.0));

  private final Layer layer;
  private final double eps;
  private final double decay;
  private final boolean logStd;

  Norm(String name, String input, Layer layer, double eps, double decay, boolean logStd) {
    super(name, List.of(input));
    this.layer = layer;
    this.eps = eps;
    this.decay = decay;
    this.logStd = logStd;
  }

  @Override
  void build(Plan plan, List<Action> forward, List<Action> back) {
    final Scope scope = plan.scope;
    final Tensor in = plan.tensor(inputs.get(0));
    final int channels = (int) in.dims[1];
    final int flags = dnnl_use_scale | dnnl_use_shift;
    final dnnl_batch_normalization_desc_t fwdDesc = new dnnl_batch_normalization_desc_t();
    Dnnl.check(
        dnnl_batch_normalization_forward_desc_init(
            fwdDesc, dnnl_forward_training, in.data.md, (float) eps, flags),
        "BatchNorm " + name);
    final dnnl_primitive_desc fwd = scope.describe(fwdDesc, null, null, "BatchNorm");
    final Memory dst = scope.allocate(in.data.md);
    final dnnl_memory_desc_t vector = Dnnl.md(new long[] {channels}, dnnl_a);
    final FloatPointer meanBuffer = scope.floats(channels);
    final FloatPointer varianceBuffer = scope.floats(channels);
    final Memory mean = scope.wrap(vector, meanBuffer.address());
    final Memory variance = scope.wrap(vector, varianceBuffer.address());
    final INDArray gamma = layer.getParam("gamma");
    final INDArray beta = layer.getParam("beta");
    final Memory scale = scope.wrap(vectorMd(gamma), Dnnl.address(gamma));
    final Memory shift = scope.wrap(vectorMd(beta), Dnnl.address(beta));
    forward.add(
        plan.run(
            scope.step(
                fwd,
                new int[] {
                  DNNL_ARG_SRC,
                  DNNL_ARG_DST,
                  DNNL_ARG_SCALE,
                  DNNL_ARG_SHIFT,
                  DNNL_ARG_MEAN,
                  DNNL_ARG_VARIANCE
                },
                new Memory[] {in.data, dst, scale, shift, mean, variance},
                name)));
    final Map<String, INDArray> grads = ModelZoo.gradientViews(layer);
    final INDArray globalMean = layer.getParam("mean");
    final INDArray globalSpread = layer.getParam(logStd ? "log10stdev" : "var");
    final INDArray gradMean = grads.get("mean");
    final INDArray gradSpread = grads.get(logStd ? "log10stdev" : "var");
    final float[] batchMean = new float[channels];
    final float[] batchVariance = new float[channels];
    forward.add(
        () -> {
          plan.scope.await();
          meanBuffer.get(batchMean);
          varianceBuffer.get(batchVariance);
          for (int c = 0; c < channels; c++) {
            final double m = globalMean.getDouble(c);
            gradMean.putScalar(c, (m - batchMean[c]) * (1 - decay));
            final double s = globalSpread.getDouble(c);
            if (logStd) {
              final double std = Math.pow(10, s);
              final double current = std * std;
              final double next = decay * current + (1 - decay) * batchVariance[c];
              gradSpread.putScalar(c, Math.log(current / next) * ONE_ON_2LOGE_10);
            } else {
              gradSpread.putScalar(c, (s - batchVariance[c]) * (1 - decay));
            }
          }
        });
    final Tensor out = plan.output(name, in.dims, dst);

    final dnnl_batch_normalization_desc_t bwdDesc = new dnnl_batch_normalization_desc_t();
    Dnnl.check(
        dnnl_batch_normalization_backward_desc_init(
            bwdDesc, dnnl_backward, dst.md, in.data.md, (float) eps, flags),
        "BatchNorm backward " + name);
    final dnnl_primitive_desc bwd = scope.describe(bwdDesc, null, fwd, "BatchNorm backward");
    final INDArray gradGamma = grads.get("gamma");
    final INDArray gradBeta = grads.get("beta");
    final Memory diffScale = scope.wrap(vectorMd(gradGamma), Dnnl.address(gradGamma));
    final Memory diffShift = scope.wrap(vectorMd(gradBeta), Dnnl.address(gradBeta));
    final List<Action> accumulate = new ArrayList<>();
    final Memory target =
        in.needsDiff ? plan.diffTarget(in, accumulate) : scope.allocate(in.data.md);
    back.add(
        plan.run(
            scope.step(
                bwd,
                new int[] {
                  DNNL_ARG_SRC,
                  DNNL_ARG_MEAN,
                  DNNL_ARG_VARIANCE,
                  DNNL_ARG_DIFF_DST,
                  DNNL_ARG_SCALE,
                  DNNL_ARG_SHIFT,
                  DNNL_ARG_DIFF_SRC,
                  DNNL_ARG_DIFF_SCALE,
                  DNNL_ARG_DIFF_SHIFT
                },
                new Memory[] {
                  in.data, mean, variance, out.diff, scale, shift, target, diffScale, diffShift
                },
                name)));
    plan.done(name, back);
    back.addAll(accumulate);
  }
}
