package io.lockstep.models;

import java.util.Collection;
import java.util.Map;
import org.deeplearning4j.nn.api.Layer;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.layers.BatchNormalization;
import org.deeplearning4j.optimize.api.TrainingListener;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * BatchNorm whose training-time mean and variance are those of the global batch (PyTorch's {@code
 * SyncBatchNorm}): the configuration of a {@link SyncBatchNormLayer}. Parameters, running
 * statistics and inference are Deeplearning4j's {@link BatchNormalization}'s, so a trained model
 * loads and predicts like one with plain BatchNorm.
 */
public class SyncBatchNormalization extends BatchNormalization {
  private static final long serialVersionUID = 1L;

  /** A layer with Deeplearning4j's BatchNorm defaults; {@code nOut} is inferred from the input. */
  public SyncBatchNormalization() {
    super();
  }

  @Override
  public SyncBatchNormalization clone() {
    return (SyncBatchNormalization) super.clone();
  }

  @Override
  public Layer instantiate(
      NeuralNetConfiguration conf,
      Collection<TrainingListener> trainingListeners,
      int layerIndex,
      INDArray layerParamsView,
      boolean initializeParams,
      DataType networkDataType) {
    if (isLockGammaBeta()) {
      throw new IllegalArgumentException(
          "layer " + getLayerName() + ": SyncBatchNorm needs trainable gamma and beta");
    }
    final SyncBatchNormLayer layer = new SyncBatchNormLayer(conf, networkDataType);
    layer.setListeners(trainingListeners);
    layer.setIndex(layerIndex);
    layer.setParamsViewArray(layerParamsView);
    final Map<String, INDArray> params =
        initializer().init(conf, layerParamsView, initializeParams);
    layer.setParamTable(params);
    layer.setConf(conf);
    return layer;
  }
}
