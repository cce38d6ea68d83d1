package io.lockstep.models;

import java.util.Arrays;
import org.deeplearning4j.nn.conf.CNN2DFormat;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.gradient.DefaultGradient;
import org.deeplearning4j.nn.gradient.Gradient;
import org.deeplearning4j.nn.layers.normalization.BatchNormalization;
import org.deeplearning4j.nn.params.BatchNormalizationParamInitializer;
import org.deeplearning4j.nn.workspace.ArrayType;
import org.deeplearning4j.nn.workspace.LayerWorkspaceMgr;
import org.nd4j.common.primitives.Pair;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.impl.broadcast.BroadcastAddOp;
import org.nd4j.linalg.api.ops.impl.broadcast.BroadcastDivOp;
import org.nd4j.linalg.api.ops.impl.broadcast.BroadcastMulOp;
import org.nd4j.linalg.api.ops.impl.broadcast.BroadcastSubOp;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.ops.transforms.Transforms;

/**
 * BatchNorm normalized, in training, by the statistics of the global batch: the per-channel sums
 * behind the mean, the variance and the two sums of the backward pass are added over all replicas
 * by a {@link StatisticsReducer}, so N replicas with slices of a batch compute what one process
 * computes on the whole batch. Three rounds per layer and step: the sum of x, then the sums of (x -
 * mean)^2 and (x - mean), from each slice's own mean and variance (Chan et al.'s parallel formula),
 * then on the way back the sums of dL/dx̂ and dL/dx̂ · (x - mean).
 *
 * <p>Without a reducer (one process, {@code fit()}) the sums are the local ones and the layer is
 * Deeplearning4j's BatchNorm. Inference uses the running statistics, as Deeplearning4j's does.
 */
public final class SyncBatchNormLayer extends BatchNormalization {
  private static final double ONE_ON_2LOGE_10 = 1.0 / (2 * Math.log(10.0));

  private StatisticsReducer reducer;
  private INDArray batchMean;
  private INDArray batchVariance;
  private INDArray sumOfCentered;
  private double count;

  SyncBatchNormLayer(NeuralNetConfiguration conf, DataType dataType) {
    super(conf, dataType);
  }

  /**
   * Sets the reducer that sums statistics over the replicas of each step.
   *
   * @param reducer the reducer, or null for local statistics
   */
  public void reducer(StatisticsReducer reducer) {
    this.reducer = reducer;
  }

  /**
   * @return the channels this layer normalizes
   */
  public int channels() {
    return (int) layerConf().getNOut();
  }

  @Override
  public INDArray preOutput(INDArray x, TrainingMode training, LayerWorkspaceMgr workspaceMgr) {
    if (training != TrainingMode.TRAIN) {
      return super.preOutput(x, training, workspaceMgr);
    }
    if (x.rank() != 2 && x.rank() != 4) {
      throw new IllegalStateException(
          layerId() + ": SyncBatchNorm takes dense or convolutional input, got rank " + x.rank());
    }
    final int channel = channelDimension(x);
    if (x.size(channel) != channels()) {
      throw new IllegalArgumentException(
          layerId()
              + ": input has "
              + x.size(channel)
              + " channels, the layer "
              + channels()
              + " (shape "
              + Arrays.toString(x.shape())
              + ")");
    }
    x = x.castTo(dataType);
    final int[] others = otherDimensions(x);
    final double perSample = (double) x.length() / (x.size(0) * channels());
    final double localCount = x.size(0) * perSample;
    count = (reducer == null ? x.size(0) : reducer.globalBatchSize()) * perSample;

    // Local mean and variance as Deeplearning4j's BatchNorm computes them (ND4J accumulates the
    // variance in double), combined over replicas by Chan et al.'s parallel formula.
    final double[] localMean = x.mean(others).toDoubleVector();
    final double[] localVariance = x.var(false, others).toDoubleVector();
    final int channels = channels();
    final float[] sums = new float[channels];
    for (int c = 0; c < channels; c++) {
      sums[c] = (float) (localMean[c] * localCount);
    }
    reduce(sums);
    batchMean = vector(sums, 0, channels).divi(count);
    final double[] mean = batchMean.toDoubleVector();
    final float[] centered = new float[2 * channels];
    for (int c = 0; c < channels; c++) {
      final double offset = localMean[c] - mean[c];
      centered[c] = (float) (localCount * (localVariance[c] + offset * offset));
      centered[channels + c] = (float) (localCount * offset);
    }
    reduce(centered);
    batchVariance = vector(centered, 0, channels).divi(count);
    sumOfCentered = vector(centered, channels, channels);
    xMu = Nd4j.getExecutioner().exec(new BroadcastSubOp(x, batchMean, x.ulike(), channel));
    std = Transforms.sqrt(batchVariance.add(layerConf().getEps()), false);
    xHat = Nd4j.getExecutioner().exec(new BroadcastDivOp(xMu, std, xMu.ulike(), channel));

    final INDArray gamma = getParam(BatchNormalizationParamInitializer.GAMMA);
    final INDArray beta = getParam(BatchNormalizationParamInitializer.BETA);
    INDArray activations =
        workspaceMgr.createUninitialized(
            ArrayType.ACTIVATIONS, x.dataType(), x.shape(), x.ordering());
    activations = Nd4j.getExecutioner().exec(new BroadcastMulOp(xHat, gamma, activations, channel));
    activations =
        Nd4j.getExecutioner().exec(new BroadcastAddOp(activations, beta, activations, channel));
    xMu = xMu.detach();
    xHat = xHat.detach();
    std = std.detach();
    batchMean = batchMean.detach();
    batchVariance = batchVariance.detach();
    sumOfCentered = sumOfCentered.detach();
    return activations;
  }

  @Override
  public Pair<Gradient, INDArray> backpropGradient(
      INDArray epsilon, LayerWorkspaceMgr workspaceMgr) {
    assertInputSet(true);
    if (xHat == null) {
      throw new IllegalStateException(
          layerId() + ": backward pass without a training forward pass");
    }
    final int channel = channelDimension(epsilon);
    final int[] others = otherDimensions(epsilon);
    final INDArray gamma = getParam(BatchNormalizationParamInitializer.GAMMA);
    final INDArray dGammaView = gradientViews.get(BatchNormalizationParamInitializer.GAMMA);
    final INDArray dBetaView = gradientViews.get(BatchNormalizationParamInitializer.BETA);
    dBetaView.assign(epsilon.sum(others));
    dGammaView.assign(epsilon.mul(xHat).sum(others));

    final INDArray dxHat =
        Nd4j.getExecutioner().exec(new BroadcastMulOp(epsilon, gamma, epsilon.ulike(), channel));
    final float[] sums = concat(dxHat.sum(others), dxHat.mul(xMu).sum(others));
    reduce(sums);
    final INDArray sumOfDxHat = vector(sums, 0, channels());
    final INDArray dVariance =
        vector(sums, channels(), channels()).muli(-0.5).muli(Transforms.pow(std, -3.0, true));
    final INDArray dMean =
        sumOfDxHat.divi(std).negi().addi(sumOfCentered.mul(-2.0 / count).muli(dVariance));
    INDArray dx = Nd4j.getExecutioner().exec(new BroadcastDivOp(dxHat, std, dxHat, channel));
    dx.addi(
        Nd4j.getExecutioner()
            .exec(new BroadcastMulOp(xMu, dVariance.muli(2.0 / count), xMu, channel)));
    Nd4j.getExecutioner().exec(new BroadcastAddOp(dx, dMean.muli(1.0 / count), dx, channel));

    final Gradient gradient = new DefaultGradient();
    gradient.setGradientFor(BatchNormalizationParamInitializer.GAMMA, dGammaView);
    gradient.setGradientFor(BatchNormalizationParamInitializer.BETA, dBetaView);
    runningStatisticsUpdate(gradient);
    xHat = null;
    xMu = null;
    return new Pair<>(gradient, workspaceMgr.leverageTo(ArrayType.ACTIVATION_GRAD, dx));
  }

  /**
   * Deeplearning4j's "distributed safe" form: the update {@code running - next} is stored as the
   * running statistics' gradient, with the global batch's mean and (biased) variance.
   */
  private void runningStatisticsUpdate(Gradient gradient) {
    final double decay = layerConf().getDecay();
    final INDArray runningMean = getParam(BatchNormalizationParamInitializer.GLOBAL_MEAN);
    final INDArray dMeanView = gradientViews.get(BatchNormalizationParamInitializer.GLOBAL_MEAN);
    dMeanView.assign(runningMean.sub(batchMean.reshape(runningMean.shape())).muli(1 - decay));
    gradient.setGradientFor(BatchNormalizationParamInitializer.GLOBAL_MEAN, dMeanView);
    final INDArray variance = batchVariance.reshape(runningMean.shape());
    if (layerConf().isUseLogStd()) {
      final INDArray log10Std = getParam(BatchNormalizationParamInitializer.GLOBAL_LOG_STD);
      final INDArray view = gradientViews.get(BatchNormalizationParamInitializer.GLOBAL_LOG_STD);
      final INDArray current =
          Transforms.pow(Nd4j.valueArrayOf(log10Std.shape(), 10.0, dataType), log10Std, false);
      current.muli(current);
      final INDArray next = current.mul(decay).addi(variance.mul(1 - decay));
      view.assign(Transforms.log(current.divi(next), false).muli(ONE_ON_2LOGE_10));
      gradient.setGradientFor(BatchNormalizationParamInitializer.GLOBAL_LOG_STD, view);
    } else {
      final INDArray runningVariance = getParam(BatchNormalizationParamInitializer.GLOBAL_VAR);
      final INDArray view = gradientViews.get(BatchNormalizationParamInitializer.GLOBAL_VAR);
      view.assign(runningVariance.sub(variance).muli(1 - decay));
      gradient.setGradientFor(BatchNormalizationParamInitializer.GLOBAL_VAR, view);
    }
  }

  private void reduce(float[] values) {
    if (reducer != null) {
      reducer.sum(values);
    }
  }

  private int channelDimension(INDArray x) {
    return x.rank() == 4 && layerConf().getCnn2DFormat() == CNN2DFormat.NHWC ? 3 : 1;
  }

  private int[] otherDimensions(INDArray x) {
    if (x.rank() == 2) {
      return new int[] {0};
    }
    return channelDimension(x) == 1 ? new int[] {0, 2, 3} : new int[] {0, 1, 2};
  }

  private INDArray vector(float[] values, int from, int length) {
    return Nd4j.createFromArray(Arrays.copyOfRange(values, from, from + length)).castTo(dataType);
  }

  private static float[] concat(INDArray first, INDArray second) {
    final float[] a = first.toFloatVector();
    final float[] b = second.toFloatVector();
    final float[] both = Arrays.copyOf(a, a.length + b.length);
    System.arraycopy(b, 0, both, a.length, b.length);
    return both;
  }
}
