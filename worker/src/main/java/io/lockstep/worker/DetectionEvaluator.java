package io.lockstep.worker;

import io.lockstep.data.Shapes;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import org.deeplearning4j.nn.conf.layers.objdetect.Yolo2OutputLayer;
import org.deeplearning4j.nn.graph.ComputationGraph;

/**
 * A detector's mAP at IoU 0.5 on test scenes. YOLOv2's activations are decoded per cell and anchor
 * (centre = cell + sigmoid offset, size = anchor x exp, both in grid cells; objectness; class
 * softmax); each class's score is objectness x class probability; candidates under {@link
 * #MIN_SCORE} are dropped, then per image and class non-maximum suppression at IoU {@link #NMS_IOU}
 * keeps at most {@link #MAX_PER_IMAGE} boxes, as VOC and COCO evaluations do.
 */
public final class DetectionEvaluator implements TestMetric {
  static final double MIN_SCORE = 0.005;
  static final double NMS_IOU = 0.45;
  static final int MAX_PER_IMAGE = 100;

  private final SceneSamples scenes;
  private final int batchSize;

  /**
   * Creates the evaluator.
   *
   * @param scenes the test scenes
   * @param batchSize images per forward pass
   */
  public DetectionEvaluator(SceneSamples scenes, int batchSize) {
    this.scenes = scenes;
    this.batchSize = batchSize;
  }

  @Override
  public String name() {
    return "map50";
  }

  @Override
  public double score(ComputationGraph network) {
    final int anchors = anchors(network);
    final double cell = scenes.cellPixels();
    final List<MeanAveragePrecision.Box> detections = new ArrayList<>();
    final List<MeanAveragePrecision.Box> truth = new ArrayList<>();
    int classes = Shapes.KINDS.size();
    for (int from = 0; from < scenes.count(); from += batchSize) {
      final int[] indices = Samples.range(from, Math.min(batchSize, scenes.count() - from));
      final org.nd4j.linalg.api.ndarray.INDArray output =
          network.output(false, scenes.features(indices, 0))[0];
      final int grid = (int) output.size(2);
      classes = (int) output.size(1) / anchors - 5;
      final float[] values = output.dup('c').data().asFloat();
      for (int i = 0; i < indices.length; i++) {
        detections.addAll(suppress(decode(values, i, indices[i], anchors, classes, grid)));
        for (Shapes.Box box : scenes.boxes(indices[i])) {
          truth.add(
              new MeanAveragePrecision.Box(
                  indices[i],
                  box.kind(),
                  1,
                  box.x1() / cell,
                  box.y1() / cell,
                  box.x2() / cell,
                  box.y2() / cell));
        }
      }
    }
    return MeanAveragePrecision.of(detections, truth, classes, 0.5);
  }

  /** The anchor boxes per cell of a network whose output layer is YOLOv2's. */
  static int anchors(ComputationGraph network) {
    return (int)
        ((Yolo2OutputLayer) network.getOutputLayer(0).conf().getLayer()).getBoundingBoxes().size(0);
  }

  /** Every anchor of every cell of image {@code i}, one candidate per class above the floor. */
  static List<MeanAveragePrecision.Box> decode(
      float[] values, int i, int image, int anchors, int classes, int grid) {
    final int cells = grid * grid;
    final int depth = 5 + classes;
    final List<MeanAveragePrecision.Box> boxes = new ArrayList<>();
    for (int a = 0; a < anchors; a++) {
      final int base = (i * anchors + a) * depth * cells;
      for (int gy = 0; gy < grid; gy++) {
        for (int gx = 0; gx < grid; gx++) {
          final int at = base + gy * grid + gx;
          final double objectness = values[at + 4 * cells];
          if (objectness < MIN_SCORE) {
            continue;
          }
          final double cx = gx + values[at];
          final double cy = gy + values[at + cells];
          final double w = values[at + 2 * cells];
          final double h = values[at + 3 * cells];
          for (int k = 0; k < classes; k++) {
            final double score = objectness * values[at + (5 + k) * cells];
            if (score >= MIN_SCORE) {
              boxes.add(
                  new MeanAveragePrecision.Box(
                      image, k, score, cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2));
            }
          }
        }
      }
    }
    return boxes;
  }

  /** Per class, the best-scoring boxes that overlap no better one by more than the threshold. */
  static List<MeanAveragePrecision.Box> suppress(List<MeanAveragePrecision.Box> candidates) {
    final List<MeanAveragePrecision.Box> ranked = new ArrayList<>(candidates);
    ranked.sort(Comparator.comparingDouble(MeanAveragePrecision.Box::score).reversed());
    final List<MeanAveragePrecision.Box> kept = new ArrayList<>();
    for (MeanAveragePrecision.Box box : ranked) {
      if (kept.size() == MAX_PER_IMAGE) {
        break;
      }
      if (kept.stream().noneMatch(k -> k.kind() == box.kind() && k.iou(box) > NMS_IOU)) {
        kept.add(box);
      }
    }
    return kept;
  }
}
