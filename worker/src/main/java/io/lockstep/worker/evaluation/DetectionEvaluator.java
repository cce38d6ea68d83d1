package io.lockstep.worker.evaluation;

import io.lockstep.data.Shapes;
import io.lockstep.worker.input.NativeMemory;
import io.lockstep.worker.input.Samples;
import io.lockstep.worker.input.SceneSamples;
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
final class DetectionEvaluator implements TestMetric {
  static final double MIN_SCORE = 0.005;
  static final double NMS_IOU = 0.45;
  static final int MAX_PER_IMAGE = 100;

  /** The report draws predicted boxes from this score up. */
  static final double SHOWN_SCORE = 0.3;

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
    final List<MeanAveragePrecision.Box> detections = new ArrayList<>();
    final List<MeanAveragePrecision.Box> truth = new ArrayList<>();
    final int classes =
        detect(
            network,
            (scene, found, grid) -> {
              detections.addAll(found);
              truth.addAll(truth(scene));
            });
    return MeanAveragePrecision.of(detections, truth, classes, Prediction.MATCH_IOU);
  }

  /**
   * Per scene, the boxes with a score of at least {@value #SHOWN_SCORE} and the true ones; right
   * when every true box is found (same class, IoU >= 0.5) and no other box is predicted.
   */
  @Override
  public List<Prediction> predict(ComputationGraph network) {
    final List<Prediction> predictions = new ArrayList<>(scenes.count());
    detect(
        network,
        (scene, found, grid) -> {
          final List<MeanAveragePrecision.Box> shown =
              found.stream().filter(box -> box.score() >= SHOWN_SCORE).toList();
          final List<MeanAveragePrecision.Box> truth = truth(scene);
          final List<MeanAveragePrecision.Box> unmatched = new ArrayList<>(shown);
          boolean allFound = true;
          for (MeanAveragePrecision.Box box : truth) {
            final MeanAveragePrecision.Box match =
                unmatched.stream()
                    .filter(p -> p.kind() == box.kind() && p.iou(box) >= Prediction.MATCH_IOU)
                    .findFirst()
                    .orElse(null);
            allFound &= match != null;
            unmatched.remove(match);
          }
          predictions.add(
              new Prediction(
                  scene,
                  -1,
                  -1,
                  allFound && unmatched.isEmpty(),
                  "",
                  truth.stream().map(box -> fraction(box, grid)).toList(),
                  shown.stream().map(box -> fraction(box, grid)).toList()));
        });
    return predictions;
  }

  /** What {@link #detect} hands over per scene. */
  @FunctionalInterface
  private interface SceneDetections {
    void accept(int scene, List<MeanAveragePrecision.Box> found, int grid);
  }

  /**
   * Runs the network over the test scenes and hands each scene's boxes after non-maximum
   * suppression, in grid cells, to {@code each}.
   *
   * @return the classes the network predicts
   */
  private int detect(ComputationGraph network, SceneDetections each) {
    final int anchors = anchors(network);
    int classes = Shapes.KINDS.size();
    for (int from = 0; from < scenes.count(); from += batchSize) {
      final int[] indices = Samples.range(from, Math.min(batchSize, scenes.count() - from));
      final org.nd4j.linalg.api.ndarray.INDArray features = scenes.features(indices, 0);
      final org.nd4j.linalg.api.ndarray.INDArray[] outputs = network.output(false, features);
      final org.nd4j.linalg.api.ndarray.INDArray output = outputs[0];
      final int grid = (int) output.size(2);
      classes = (int) output.size(1) / anchors - 5;
      final org.nd4j.linalg.api.ndarray.INDArray rowMajor = output.dup('c');
      final float[] values = rowMajor.data().asFloat();
      NativeMemory.release(rowMajor, features);
      NativeMemory.release(outputs);
      for (int i = 0; i < indices.length; i++) {
        each.accept(
            indices[i], suppress(decode(values, i, indices[i], anchors, classes, grid)), grid);
      }
    }
    return classes;
  }

  /** A scene's true boxes, in grid cells. */
  private List<MeanAveragePrecision.Box> truth(int scene) {
    final double cell = scenes.cellPixels();
    final List<MeanAveragePrecision.Box> truth = new ArrayList<>();
    for (Shapes.Box box : scenes.boxes(scene)) {
      truth.add(
          new MeanAveragePrecision.Box(
              scene,
              box.kind(),
              1,
              box.x1() / cell,
              box.y1() / cell,
              box.x2() / cell,
              box.y2() / cell));
    }
    return truth;
  }

  private static Prediction.Box fraction(MeanAveragePrecision.Box box, int grid) {
    return new Prediction.Box(
        box.kind(),
        box.score(),
        box.x1() / grid,
        box.y1() / grid,
        box.x2() / grid,
        box.y2() / grid);
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
