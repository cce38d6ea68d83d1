package io.lockstep.models;

import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;

/**
 * Residual networks as torchvision defines them (v1.5: a bottleneck's stride is on its 3x3
 * convolution), and their small-image variants. Convolutions before BatchNorm have no bias.
 */
final class ResNets {
  private ResNets() {}

  /**
   * torchvision's ResNet-18 or -34 for 3x224x224: a 7x7 stride-2 stem of 64 channels, BatchNorm,
   * ReLU, 3x3 stride-2 max-pool, four stages of basic blocks (64, 128, 256, 512 channels; the last
   * three entered at stride 2 through a 1x1 projection), global average pooling, a linear
   * classifier: 11,689,512 and 21,797,672 parameters.
   *
   * @param blocks basic blocks per stage: {2, 2, 2, 2} or {3, 4, 6, 3}
   */
  static ComputationGraphConfiguration basic(ZooGraph g, int[] blocks) {
    return stages(g, imageNetStem(g), blocks, 1);
  }

  /**
   * torchvision's ResNet-50 for 3x224x224: the ImageNet stem, four stages of 3, 4, 6 and 3
   * bottleneck blocks (1x1 to the stage's width of 64, 128, 256 or 512, 3x3, 1x1 to four times
   * that), global average pooling, a linear classifier: 25,557,032 parameters.
   */
  static ComputationGraphConfiguration resnet50(ZooGraph g) {
    return stages(g, imageNetStem(g), new int[] {3, 4, 6, 3}, 4);
  }

  /**
   * ResNet-18 for 32x32 images as the CIFAR literature (and {@code
   * bench/pytorch/cifar_resnet_bench.py}) defines it: torchvision's ResNet-18 with a 3x3 stride-1
   * stem and no max-pool: 11,173,962 parameters for 10 classes.
   */
  static ComputationGraphConfiguration resnet18Cifar(ZooGraph g) {
    return stages(g, smallStem(g, 64), new int[] {2, 2, 2, 2}, 1);
  }

  /**
   * A small residual network for 28x28 images: a 3x3 stem of 16 channels, two basic blocks (16
   * channels at 14x14, 32 at 7x7), each entered at stride 2 through a 1x1 projection, global
   * average pooling and the classifier.
   */
  static ComputationGraphConfiguration mini(ZooGraph g) {
    String x = smallStem(g, 16);
    x = basicBlock(g, "block1", x, 16, 2, true);
    x = basicBlock(g, "block2", x, 32, 2, true);
    return g.build(g.output("output", g.globalAverage("pool", x)));
  }

  /**
   * 7x7 stride-2 convolution to 64 channels, BatchNorm, ReLU, 3x3 stride-2 max-pool (padding 1).
   */
  private static String imageNetStem(ZooGraph g) {
    String x = g.conv("stem", ZooGraph.INPUT, 7, 2, 3, 64, false);
    x = g.batchNorm("stem_bn", x);
    x = g.relu("stem_relu", x);
    return g.maxPool("stem_pool", x, 3, 2, 1);
  }

  /** 3x3 stride-1 convolution, BatchNorm, ReLU. */
  private static String smallStem(ZooGraph g, int channels) {
    String x = g.conv("stem", ZooGraph.INPUT, 3, 1, 1, channels, false);
    x = g.batchNorm("stem_bn", x);
    return g.relu("stem_relu", x);
  }

  /**
   * Stages {@code layer1..layer4} of 64, 128, 256 and 512 wide blocks (the last three entered at
   * stride 2), global average pooling and the classifier.
   *
   * @param expansion 1: basic blocks; 4: bottlenecks
   */
  private static ComputationGraphConfiguration stages(
      ZooGraph g, String stem, int[] blocks, int expansion) {
    String x = stem;
    int inChannels = 64;
    final int[] widths = {64, 128, 256, 512};
    for (int stage = 0; stage < widths.length; stage++) {
      for (int block = 0; block < blocks[stage]; block++) {
        final int stride = stage > 0 && block == 0 ? 2 : 1;
        final int out = widths[stage] * expansion;
        final boolean project = stride != 1 || inChannels != out;
        final String name = "layer" + (stage + 1) + "_" + block;
        x =
            expansion == 1
                ? basicBlock(g, name, x, widths[stage], stride, project)
                : bottleneck(g, name, x, widths[stage], stride, project);
        inChannels = out;
      }
    }
    return g.build(g.output("output", g.globalAverage("pool", x)));
  }

  /**
   * conv3x3-BN-ReLU-conv3x3-BN, plus the input (through a 1x1 projection and BN when {@code
   * project}), then ReLU.
   */
  private static String basicBlock(
      ZooGraph g, String name, String in, int channels, int stride, boolean project) {
    String x = g.conv(name + "_conv1", in, 3, stride, 1, channels, false);
    x = g.batchNorm(name + "_bn1", x);
    x = g.relu(name + "_relu1", x);
    x = g.conv(name + "_conv2", x, 3, 1, 1, channels, false);
    x = g.batchNorm(name + "_bn2", x);
    return residual(g, name, in, x, channels, stride, project);
  }

  /**
   * conv1x1-BN-ReLU to {@code width}, conv3x3 (stride here)-BN-ReLU, conv1x1-BN to {@code 4 x
   * width}, plus the input (projected when {@code project}), then ReLU.
   */
  private static String bottleneck(
      ZooGraph g, String name, String in, int width, int stride, boolean project) {
    String x = g.conv(name + "_conv1", in, 1, 1, 0, width, false);
    x = g.batchNorm(name + "_bn1", x);
    x = g.relu(name + "_relu1", x);
    x = g.conv(name + "_conv2", x, 3, stride, 1, width, false);
    x = g.batchNorm(name + "_bn2", x);
    x = g.relu(name + "_relu2", x);
    x = g.conv(name + "_conv3", x, 1, 1, 0, 4 * width, false);
    x = g.batchNorm(name + "_bn3", x);
    return residual(g, name, in, x, 4 * width, stride, project);
  }

  private static String residual(
      ZooGraph g, String name, String in, String branch, int out, int stride, boolean project) {
    String shortcut = in;
    if (project) {
      shortcut = g.conv(name + "_proj", in, 1, stride, 0, out, false);
      shortcut = g.batchNorm(name + "_proj_bn", shortcut);
    }
    return g.relu(name + "_out", g.add(name + "_add", branch, shortcut));
  }
}
