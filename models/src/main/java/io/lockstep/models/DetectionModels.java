package io.lockstep.models;

import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.nd4j.linalg.activations.Activation;

/** Detectors: a convolutional body down to a grid of cells and YOLOv2's output layer on it. */
final class DetectionModels {
  /**
   * The anchor boxes of {@code shapes-yolo}, in grid cells (width, height): the scenes' shapes are
   * squares of 10 to 45% of a 64-pixel side, 0.8 to 3.6 cells of 8 pixels, and each anchor takes a
   * third of that range.
   */
  static final double[][] SHAPES_PRIORS = {{1.2, 1.2}, {2.2, 2.2}, {3.2, 3.2}};

  private DetectionModels() {}

  /**
   * The image down to the 8x8 grid: three 3x3 convolutions (16, 32, 64 channels) with leaky ReLU,
   * each followed by 2x2 max-pooling.
   */
  private static String grid(ZooGraph g) {
    String x = ZooGraph.INPUT;
    final int[] widths = {16, 32, 64};
    for (int i = 0; i < widths.length; i++) {
      x = g.conv("conv" + (i + 1), x, 3, 1, 1, widths[i], true, Activation.LEAKYRELU);
      x = g.maxPool("pool" + (i + 1), x, 2, 2, 0);
    }
    return x;
  }

  /**
   * A small YOLOv2 for 64x64 scenes: three 3x3 convolutions (16, 32, 64 channels), each followed by
   * 2x2 max-pooling, to an 8x8 grid; two 3x3 convolutions of 128 channels there (a receptive field
   * of 70 pixels, wider than any shape), leaky ReLU throughout; a 1x1 convolution to {@code anchors
   * x (5 + classes)} channels and {@code Yolo2OutputLayer}: per cell and anchor, box centre and
   * size, objectness (squared error) and the class (cross-entropy).
   */
  static ComputationGraphConfiguration shapesYolo(ZooGraph g) {
    String x = grid(g);
    x = g.conv("conv4", x, 3, 1, 1, 128, true, Activation.LEAKYRELU);
    x = g.conv("conv5", x, 3, 1, 1, 128, true, Activation.LEAKYRELU);
    return g.build(g.yolo("yolo", x, SHAPES_PRIORS));
  }

  /**
   * One-stage grounding for 64x64 scenes (as Yang et al., "A Fast and Accurate One-Stage Approach
   * to Visual Grounding", ICCV 2019): the image through the detector's convolutions to an 8x8x64
   * map; the phrase's tokens through a 16-wide embedding and an LSTM of 64, its last state spread
   * by a linear layer over the 8x8 grid (64 channels, so each cell gets the phrase and where it is)
   * and concatenated with the image's map; three 3x3 convolutions of 128 channels dilated 1, 2 and
   * 4 (a receptive field of 134 pixels: every cell sees the whole scene, as "on the left" needs);
   * the detector's head, trained on the named shape alone. The prediction is the box of the highest
   * objectness.
   */
  static ComputationGraphConfiguration shapesGrounding(ZooGraph g) {
    String x = grid(g);
    String words =
        g.embedding("embedding", ZooGraph.TOKENS, ModelZoo.VOCABULARY, 16, ModelZoo.PHRASE_TOKENS);
    words = g.lstmLast("lstm", words, 64);
    words = g.dense("spread", words, 64 * 8 * 8, Activation.LEAKYRELU, 0);
    words = g.image("phrase_map", words, 64, 8, 8);
    x = g.concat("fused", x, words);
    x = g.dilatedConv("conv4", x, 1, 128, Activation.LEAKYRELU);
    x = g.dilatedConv("conv5", x, 2, 128, Activation.LEAKYRELU);
    x = g.dilatedConv("conv6", x, 4, 128, Activation.LEAKYRELU);
    return g.build(g.yolo("yolo", x, SHAPES_PRIORS));
  }
}
