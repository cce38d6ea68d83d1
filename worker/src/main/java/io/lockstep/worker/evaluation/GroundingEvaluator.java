package io.lockstep.worker.evaluation;

import io.lockstep.data.Grounding;
import io.lockstep.models.ModelZoo;
import io.lockstep.worker.input.NativeMemory;
import io.lockstep.worker.input.PhraseSamples;
import io.lockstep.worker.input.Samples;
import java.util.ArrayList;
import java.util.List;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * A grounding model's mean IoU between the box it predicts and the box the phrase names. The
 * prediction is the box of the anchor and cell of the highest objectness in YOLOv2's activations
 * (decoded as {@link DetectionEvaluator} does).
 */
final class GroundingEvaluator implements TestMetric {
  private final PhraseSamples examples;
  private final int batchSize;

  /**
   * Creates the evaluator.
   *
   * @param examples the test examples
   * @param batchSize examples per forward pass
   */
  public GroundingEvaluator(PhraseSamples examples, int batchSize) {
    this.examples = examples;
    this.batchSize = batchSize;
  }

  @Override
  public String name() {
    return "mean_iou";
  }

  @Override
  public double score(ComputationGraph network) {
    final double[] sum = {0};
    locate(network, (found, example) -> sum[0] += iou(found, examples.box(example)));
    return sum[0] / examples.count();
  }

  /** Per phrase, the box of the highest objectness; right at IoU >= 0.5 with the named shape's. */
  @Override
  public List<Prediction> predict(ComputationGraph network) {
    final List<Prediction> predictions = new ArrayList<>(examples.count());
    locate(
        network,
        (found, example) -> {
          final double[] truth = examples.box(example);
          final Grounding.Example shown = examples.example(example);
          final int kind = shown.target().kind();
          predictions.add(
              new Prediction(
                  example,
                  kind,
                  -1,
                  iou(found, truth) >= Prediction.MATCH_IOU,
                  shown.phrase(),
                  List.of(new Prediction.Box(kind, 1, truth[0], truth[1], truth[2], truth[3])),
                  List.of(new Prediction.Box(kind, 1, found[0], found[1], found[2], found[3]))));
        });
    return predictions;
  }

  /**
   * Runs the network over the test phrases and hands each one's {@link #best} box to {@code each}.
   */
  private void locate(ComputationGraph network, java.util.function.ObjIntConsumer<double[]> each) {
    final int anchors = DetectionEvaluator.anchors(network);
    for (int from = 0; from < examples.count(); from += batchSize) {
      final int[] indices = Samples.range(from, Math.min(batchSize, examples.count() - from));
      final INDArray features = examples.features(indices, 0);
      final INDArray[] inputs = ModelZoo.inputs(network, features);
      final INDArray[] outputs = network.output(false, inputs);
      final INDArray output = outputs[0];
      final int grid = (int) output.size(2);
      final int depth = (int) output.size(1) / anchors;
      final INDArray rowMajor = output.dup('c');
      final float[] values = rowMajor.data().asFloat();
      NativeMemory.release(rowMajor, features);
      NativeMemory.release(inputs);
      NativeMemory.release(outputs);
      for (int i = 0; i < indices.length; i++) {
        each.accept(best(values, i, anchors, depth, grid), indices[i]);
      }
    }
  }

  /**
   * The box of the highest objectness of image {@code i}.
   *
   * @param values YOLOv2's activations {@code [n, anchors, depth, grid, grid]}, row-major
   * @param i the image
   * @param anchors anchors per cell
   * @param depth values per anchor: 5 + classes
   * @param grid cells per side
   * @return {@code x1, y1, x2, y2} as fractions of the image's side
   */
  static double[] best(float[] values, int i, int anchors, int depth, int grid) {
    final int cells = grid * grid;
    int at = -1;
    int cell = -1;
    for (int a = 0; a < anchors; a++) {
      final int base = (i * anchors + a) * depth * cells;
      for (int c = 0; c < cells; c++) {
        if (at < 0 || values[base + c + 4 * cells] > values[at + 4 * cells]) {
          at = base + c;
          cell = c;
        }
      }
    }
    final double cx = cell % grid + values[at];
    final double cy = cell / grid + values[at + cells];
    final double w = values[at + 2 * cells];
    final double h = values[at + 3 * cells];
    return new double[] {
      (cx - w / 2) / grid, (cy - h / 2) / grid, (cx + w / 2) / grid, (cy + h / 2) / grid
    };
  }

  /**
   * Intersection over union of two boxes {@code (x1, y1, x2, y2)}; a predicted box with a corner
   * past the other counts as empty.
   *
   * @param a a box
   * @param b a box
   * @return IoU in [0, 1]
   */
  static double iou(double[] a, double[] b) {
    final double w = Math.min(a[2], b[2]) - Math.max(a[0], b[0]);
    final double h = Math.min(a[3], b[3]) - Math.max(a[1], b[1]);
    if (w <= 0 || h <= 0) {
      return 0;
    }
    final double intersection = w * h;
    final double union =
        Math.max(0, a[2] - a[0]) * Math.max(0, a[3] - a[1])
            + Math.max(0, b[2] - b[0]) * Math.max(0, b[3] - b[1])
            - intersection;
    return intersection / union;
  }
}
