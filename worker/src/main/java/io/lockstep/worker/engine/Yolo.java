package io.lockstep.worker.engine;

import static org.bytedeco.dnnl.global.dnnl.dnnl_nchw;

import io.lockstep.worker.engine.Dnnl.Memory;
import io.lockstep.worker.input.NativeMemory;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.bytedeco.dnnl.dnnl_memory_desc_t;
import org.bytedeco.javacpp.FloatPointer;
import org.deeplearning4j.nn.layers.objdetect.Yolo2OutputLayer;
import org.deeplearning4j.nn.workspace.LayerWorkspaceMgr;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * YOLOv2's loss on the last convolution's output, {@code [n, anchors x (5 + classes), grid, grid]}:
 * the network's own {@link Yolo2OutputLayer} computes it and the output's gradient, from that
 * output in plain NCHW and the labels ({@code [n, 4 + classes, grid, grid]}: each object's corners
 * in grid cells and its class, in the cell of its centre), so a detector learns on the engine
 * exactly what it learns on Deeplearning4j's layers. The loss has no parameters; its gradient is a
 * sum over the batch and its score a mean, as the engine's other losses.
 */
final class Yolo extends Op {
  private final Yolo2OutputLayer layer;
  private final long anchors;

  Yolo(String name, String input, Yolo2OutputLayer layer, long anchors) {
    super(name, List.of(input));
    this.layer = layer;
    this.anchors = anchors;
  }

  /** The labels' channels for an output of {@code channels}: the four corners and one per class. */
  long labelChannels(long channels) {
    return 4 + channels / anchors - 5;
  }

  @Override
  void build(Plan plan, List<Action> forward, List<Action> back) {
    final Tensor in = plan.tensor(inputs.get(0));
    final long[] dims = in.dims;
    if (dims[1] % anchors != 0 || dims[1] / anchors <= 5) {
      throw new IllegalArgumentException(
          "layer "
              + name
              + " takes "
              + anchors
              + " x (5 + classes) channels, its input has "
              + dims[1]);
    }
    final long[] labelDims = {dims[0], labelChannels(dims[1]), dims[2], dims[3]};
    final int count = (int) (dims[0] * dims[1] * dims[2] * dims[3]);
    final dnnl_memory_desc_t plainMd = Dnnl.md(dims, dnnl_nchw);
    final Memory output = plan.as(plainMd, forward, in.data);
    final FloatPointer outputs = new FloatPointer(new Dnnl.Address(output.address()));
    final FloatPointer gradients = plan.scope.floats(count);
    final Memory gradient = plan.scope.wrap(plainMd, gradients.address());
    final float[] values = new float[count];
    forward.add(
        () -> {
          plan.scope.await();
          if (plan.labels.length != count / dims[1] * labelDims[1]) {
            throw new IllegalArgumentException(
                "labels of "
                    + plan.labels.length
                    + " values; layer "
                    + name
                    + " takes "
                    + Arrays.toString(labelDims));
          }
          outputs.get(values);
          final INDArray x = Nd4j.create(values, dims, 'c');
          final INDArray labels = Nd4j.create(plan.labels, labelDims, 'c');
          INDArray epsilon = null;
          INDArray dense = null;
          try {
            final LayerWorkspaceMgr workspaces = LayerWorkspaceMgr.noWorkspaces();
            layer.setInput(x, workspaces);
            layer.setLabels(labels);
            plan.loss += layer.computeScore(0, true, workspaces);
            epsilon = layer.backpropGradient(null, workspaces).getSecond();
            dense = epsilon.dup('c');
            NativeMemory.read(dense, values);
            gradients.put(values);
          } finally {
            layer.clear();
            NativeMemory.release(x, labels, epsilon, dense);
          }
        });
    if (in.needsDiff) {
      final List<Action> accumulate = new ArrayList<>();
      final Memory target = plan.diffTarget(in, accumulate);
      back.add(plan.run(plan.scope.reorder(gradient, target)));
      back.addAll(accumulate);
    }
  }
}
