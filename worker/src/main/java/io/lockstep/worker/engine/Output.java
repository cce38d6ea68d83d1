package io.lockstep.worker.engine;

import static org.bytedeco.dnnl.global.dnnl.dnnl_ab;

import io.lockstep.worker.engine.Dnnl.Memory;
import java.util.List;
import org.bytedeco.dnnl.dnnl_memory_desc_t;
import org.bytedeco.javacpp.FloatPointer;
import org.deeplearning4j.nn.api.Layer;
import org.deeplearning4j.nn.conf.CNN2DFormat;

/**
 * An output layer: logits, then softmax and cross-entropy in Java, on {@code [n, k]}, weighted in
 * the network's loss (GoogLeNet's auxiliary classifiers weigh 0.3); the plan's loss is the sum of
 * its output layers' losses, as Deeplearning4j's score is.
 */
final class Output extends Dense {
  private final double clip;
  private final double weight;

  Output(
      String name,
      String input,
      Layer layer,
      long classes,
      boolean bias,
      CNN2DFormat flattening,
      double clip,
      double weight) {
    super(name, input, layer, classes, bias, null, flattening);
    this.clip = clip;
    this.weight = weight;
  }

  @Override
  dnnl_memory_desc_t destination(long n) {
    return Dnnl.md(new long[] {n, outputs}, dnnl_ab);
  }

  @Override
  Memory dstMemory(Plan plan, dnnl_memory_desc_t md, long n) {
    return plan.scope.wrap(md, plan.scope.floats(n * outputs).address());
  }

  @Override
  Memory afterForward(Plan plan, Memory dst, Tensor out, List<Action> forward) {
    final int n = (int) out.dims[0];
    final int k = (int) outputs;
    final FloatPointer logits = new FloatPointer(new Dnnl.Address(dst.address()));
    final FloatPointer gradient = plan.scope.floats((long) n * k);
    final Memory gradientMemory = plan.scope.wrap(dst.md, gradient.address());
    final float[] z = new float[n * k];
    final float[] g = new float[n * k];
    forward.add(
        () -> {
          plan.scope.await();
          logits.get(z);
          final float[] y = plan.labels;
          double loss = 0;
          for (int i = 0; i < n; i++) {
            double max = Double.NEGATIVE_INFINITY;
            for (int j = 0; j < k; j++) {
              max = Math.max(max, z[i * k + j]);
            }
            double sum = 0;
            for (int j = 0; j < k; j++) {
              sum += Math.exp(z[i * k + j] - max);
            }
            for (int j = 0; j < k; j++) {
              final double p = Math.exp(z[i * k + j] - max) / sum;
              g[i * k + j] = (float) (weight * (p - y[i * k + j]));
              if (y[i * k + j] != 0) {
                loss -= y[i * k + j] * Math.log(Math.min(Math.max(p, clip), 1 - clip));
              }
            }
          }
          gradient.put(g);
          plan.loss += weight * loss / n;
        });
    return gradientMemory;
  }
}
