package io.lockstep.worker.evaluation;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Mean average precision of detections, as PASCAL VOC (2010 on) and COCO's mAP@0.5 compute it: per
 * class, detections ranked by score are matched greedily to the unmatched ground-truth box of the
 * same image and class with the highest IoU, a match at or above the threshold is a true positive
 * and anything else (a second detection of a matched box included) a false positive; the class's AP
 * is the area under the precision-recall curve with precision made monotone (each recall's
 * precision is the best at that recall or beyond); mAP is the mean over the classes that have
 * ground truth.
 */
final class MeanAveragePrecision {
  private MeanAveragePrecision() {}

  /**
   * A box, in any unit the detections and the truth share.
   *
   * @param image the image it belongs to
   * @param kind its class
   * @param score the detector's confidence; ignored for ground truth
   * @param x1 left
   * @param y1 top
   * @param x2 right
   * @param y2 bottom
   */
  public record Box(int image, int kind, double score, double x1, double y1, double x2, double y2) {
    /**
     * Intersection over union.
     *
     * @param other a box
     * @return IoU in [0, 1]
     */
    public double iou(Box other) {
      final double w = Math.min(x2, other.x2) - Math.max(x1, other.x1);
      final double h = Math.min(y2, other.y2) - Math.max(y1, other.y1);
      if (w <= 0 || h <= 0) {
        return 0;
      }
      final double intersection = w * h;
      final double union = (x2 - x1) * (y2 - y1) + (other.x2 - other.x1) * (other.y2 - other.y1);
      return intersection / (union - intersection);
    }
  }

  /**
   * The mean over classes of the average precision at an IoU threshold.
   *
   * @param detections every image's detections
   * @param truth every image's ground-truth boxes
   * @param classes the number of classes
   * @param iouThreshold the IoU a detection needs to count, 0.5 for mAP50
   * @return mAP in [0, 1]; NaN when there is no ground truth at all
   */
  public static double of(List<Box> detections, List<Box> truth, int classes, double iouThreshold) {
    double sum = 0;
    int counted = 0;
    for (int kind = 0; kind < classes; kind++) {
      final int k = kind;
      final List<Box> classTruth = truth.stream().filter(b -> b.kind() == k).toList();
      if (classTruth.isEmpty()) {
        continue;
      }
      final List<Box> ranked =
          new ArrayList<>(detections.stream().filter(b -> b.kind() == k).toList());
      ranked.sort(Comparator.comparingDouble(Box::score).reversed());
      sum += averagePrecision(ranked, classTruth, iouThreshold);
      counted++;
    }
    return counted == 0 ? Double.NaN : sum / counted;
  }

  private static double averagePrecision(List<Box> ranked, List<Box> truth, double threshold) {
    final Map<Integer, List<Box>> truthByImage = new HashMap<>();
    for (Box box : truth) {
      truthByImage.computeIfAbsent(box.image(), i -> new ArrayList<>()).add(box);
    }
    final Map<Box, Boolean> matched = new java.util.IdentityHashMap<>();
    final double[] precision = new double[ranked.size()];
    final double[] recall = new double[ranked.size()];
    int truePositives = 0;
    for (int i = 0; i < ranked.size(); i++) {
      final Box detection = ranked.get(i);
      Box best = null;
      double bestIou = threshold;
      for (Box candidate : truthByImage.getOrDefault(detection.image(), List.of())) {
        final double iou = detection.iou(candidate);
        if (!matched.containsKey(candidate) && iou >= bestIou) {
          best = candidate;
          bestIou = iou;
        }
      }
      if (best != null) {
        matched.put(best, true);
        truePositives++;
      }
      precision[i] = truePositives / (double) (i + 1);
      recall[i] = truePositives / (double) truth.size();
    }
    // the precision envelope, then the area under it over the recall steps
    for (int i = precision.length - 2; i >= 0; i--) {
      precision[i] = Math.max(precision[i], precision[i + 1]);
    }
    double area = 0;
    double previousRecall = 0;
    for (int i = 0; i < recall.length; i++) {
      area += (recall[i] - previousRecall) * precision[i];
      previousRecall = recall[i];
    }
    return area;
  }
}
