package io.lockstep.worker;

import org.deeplearning4j.nn.api.Layer;
import org.deeplearning4j.nn.gradient.Gradient;
import org.deeplearning4j.nn.layers.wrapper.BaseWrapperLayer;
import org.deeplearning4j.nn.workspace.LayerWorkspaceMgr;
import org.nd4j.common.primitives.Pair;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * A layer that says when its backward pass is done, so its gradient can be sent while the layers
 * before it still compute theirs. Everything else goes to the layer it wraps.
 */
final class ObservedLayer extends BaseWrapperLayer {
  private final Runnable done;

  ObservedLayer(Layer underlying, Runnable done) {
    super(underlying);
    this.done = done;
  }

  @Override
  public Pair<Gradient, INDArray> backpropGradient(
      INDArray epsilon, LayerWorkspaceMgr workspaceMgr) {
    final Pair<Gradient, INDArray> result = underlying.backpropGradient(epsilon, workspaceMgr);
    done.run();
    return result;
  }
}
