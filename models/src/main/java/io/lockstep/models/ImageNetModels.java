package io.lockstep.models;

import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.nd4j.linalg.activations.Activation;

/**
 * The seeds' ImageNet architectures for 3x224x224 images, layer for layer as torchvision defines
 * them (trainable parameters equal to torchvision's), plus MobileNet v1 as its paper does. Where
 * torchvision pools adaptively to a fixed size, the size is already that at 224x224 and the pooling
 * is left out.
 */
final class ImageNetModels {
  private ImageNetModels() {}

  /**
   * torchvision's AlexNet: five convolutions (11x11/4 to 64, 5x5 to 192, 3x3 to 384, 256, 256) with
   * ReLU and three 3x3/2 max-pools, then dropout 0.5, fc 4096, ReLU, dropout 0.5, fc 4096, ReLU, fc
   * to the classes: 61,100,840 parameters.
   */
  static ComputationGraphConfiguration alexnet(ZooGraph g) {
    String x = g.conv("conv1", ZooGraph.INPUT, 11, 4, 2, 64, true, Activation.RELU);
    x = g.maxPool("pool1", x, 3, 2, 0);
    x = g.conv("conv2", x, 5, 1, 2, 192, true, Activation.RELU);
    x = g.maxPool("pool2", x, 3, 2, 0);
    x = g.conv("conv3", x, 3, 1, 1, 384, true, Activation.RELU);
    x = g.conv("conv4", x, 3, 1, 1, 256, true, Activation.RELU);
    x = g.conv("conv5", x, 3, 1, 1, 256, true, Activation.RELU);
    x = g.maxPool("pool5", x, 3, 2, 0);
    x = g.dense("fc6", x, 4096, Activation.RELU, 0.5);
    x = g.dense("fc7", x, 4096, Activation.RELU, 0.5);
    return g.build(g.output("output", x));
  }

  /**
   * torchvision's VGG without BatchNorm: stages of 3x3 convolutions with ReLU (64, 128, 256, 512,
   * 512 channels), each closed by a 2x2 max-pool, then fc 4096, ReLU, dropout 0.5, fc 4096, ReLU,
   * dropout 0.5, fc to the classes: 138,357,544 parameters for VGG-16, 143,667,240 for VGG-19.
   *
   * @param convolutions per stage: {2, 2, 3, 3, 3} (VGG-16) or {2, 2, 4, 4, 4} (VGG-19)
   */
  static ComputationGraphConfiguration vgg(ZooGraph g, int[] convolutions) {
    final int[] channels = {64, 128, 256, 512, 512};
    String x = ZooGraph.INPUT;
    for (int stage = 0; stage < channels.length; stage++) {
      for (int c = 0; c < convolutions[stage]; c++) {
        final String name = "conv" + (stage + 1) + "_" + (c + 1);
        x = g.conv(name, x, 3, 1, 1, channels[stage], true, Activation.RELU);
      }
      x = g.maxPool("pool" + (stage + 1), x, 2, 2, 0);
    }
    x = g.dense("fc6", x, 4096, Activation.RELU, 0);
    x = g.dense("fc7", x, 4096, Activation.RELU, 0.5);
    return g.build(g.output("output", x, 0.5, 1));
  }

  /**
   * torchvision's DenseNet-121: a 7x7/2 stem of 64 channels with BatchNorm, ReLU and a 3x3/2
   * max-pool; dense blocks of 6, 12, 24 and 16 layers, each layer BN-ReLU-conv1x1 to 128 (the
   * bottleneck, 4 x growth) then BN-ReLU-conv3x3 to 32 (the growth rate) concatenated to its input;
   * between blocks a transition halving channels (BN-ReLU-conv1x1) and size (2x2 average pool);
   * final BatchNorm, ReLU, global average pooling, linear classifier: 7,978,856 parameters.
   */
  static ComputationGraphConfiguration densenet121(ZooGraph g) {
    final int growth = 32;
    final int bottleneck = 4 * growth;
    final int[] layers = {6, 12, 24, 16};
    String x = g.conv("conv0", ZooGraph.INPUT, 7, 2, 3, 64, false);
    x = g.relu("relu0", g.batchNorm("norm0", x));
    x = g.maxPool("pool0", x, 3, 2, 1);
    int channels = 64;
    for (int block = 0; block < layers.length; block++) {
      for (int layer = 0; layer < layers[block]; layer++) {
        final String name = "block" + (block + 1) + "_layer" + (layer + 1);
        String y = g.relu(name + "_relu1", g.batchNorm(name + "_norm1", x));
        y = g.conv(name + "_conv1", y, 1, 1, 0, bottleneck, false);
        y = g.relu(name + "_relu2", g.batchNorm(name + "_norm2", y));
        y = g.conv(name + "_conv2", y, 3, 1, 1, growth, false);
        x = g.concat(name + "_cat", x, y);
        channels += growth;
      }
      if (block < layers.length - 1) {
        final String name = "transition" + (block + 1);
        x = g.relu(name + "_relu", g.batchNorm(name + "_norm", x));
        channels /= 2;
        x = g.conv(name + "_conv", x, 1, 1, 0, channels, false);
        x = g.averagePool(name + "_pool", x, 2, 2);
      }
    }
    x = g.relu("relu5", g.batchNorm("norm5", x));
    return g.build(g.output("output", g.globalAverage("pool", x)));
  }

  /**
   * torchvision's GoogLeNet (Inception v1) as trained, with its two auxiliary classifiers: every
   * convolution without bias, then BatchNorm (eps 0.001) and ReLU; 3x3/2 max-pools with ceil
   * rounding; nine inception modules (1x1; 1x1 then 3x3; 1x1 then 3x3, where the paper has 5x5 and
   * torchvision keeps 3x3; 3x3 max-pool then 1x1, concatenated); global average pooling, dropout
   * 0.2, linear classifier. The auxiliary classifiers after 4a and 4d pool 5x5/3 to 4x4 (the
   * paper's pooling; torchvision's adaptive 4x4 pooling has the same shapes), conv 1x1 to 128, fc
   * 1024 ReLU, dropout 0.7, fc to the classes, each weighted 0.3 in the loss: 13,004,888
   * parameters. Predictions are the main classifier's.
   */
  static ComputationGraphConfiguration googlenet(ZooGraph g) {
    String x = basicConv(g, "conv1", ZooGraph.INPUT, 7, 2, 3, 64);
    x = g.maxPoolCeil("pool1", x, 3, 2);
    x = basicConv(g, "conv2", x, 1, 1, 0, 64);
    x = basicConv(g, "conv3", x, 3, 1, 1, 192);
    x = g.maxPoolCeil("pool2", x, 3, 2);
    x = inception(g, "inception3a", x, 64, 96, 128, 16, 32, 32);
    x = inception(g, "inception3b", x, 128, 128, 192, 32, 96, 64);
    x = g.maxPoolCeil("pool3", x, 3, 2);
    x = inception(g, "inception4a", x, 192, 96, 208, 16, 48, 64);
    final String aux1 = auxiliary(g, "aux1", x);
    x = inception(g, "inception4b", x, 160, 112, 224, 24, 64, 64);
    x = inception(g, "inception4c", x, 128, 128, 256, 24, 64, 64);
    x = inception(g, "inception4d", x, 112, 144, 288, 32, 64, 64);
    final String aux2 = auxiliary(g, "aux2", x);
    x = inception(g, "inception4e", x, 256, 160, 320, 32, 128, 128);
    x = g.maxPoolCeil("pool4", x, 2, 2);
    x = inception(g, "inception5a", x, 256, 160, 320, 32, 128, 128);
    x = inception(g, "inception5b", x, 384, 192, 384, 48, 128, 128);
    final String output = g.output("output", g.globalAverage("pool", x), 0.2, 1);
    return g.build(output, aux1, aux2);
  }

  private static String basicConv(
      ZooGraph g, String name, String in, int kernel, int stride, int padding, int out) {
    final String x = g.conv(name, in, kernel, stride, padding, out, false);
    return g.relu(name + "_relu", g.batchNorm(name + "_bn", x, 0.001));
  }

  private static String inception(
      ZooGraph g,
      String name,
      String in,
      int ch1x1,
      int ch3x3reduce,
      int ch3x3,
      int ch5x5reduce,
      int ch5x5,
      int poolProjection) {
    final String branch1 = basicConv(g, name + "_b1", in, 1, 1, 0, ch1x1);
    String branch2 = basicConv(g, name + "_b2a", in, 1, 1, 0, ch3x3reduce);
    branch2 = basicConv(g, name + "_b2b", branch2, 3, 1, 1, ch3x3);
    String branch3 = basicConv(g, name + "_b3a", in, 1, 1, 0, ch5x5reduce);
    branch3 = basicConv(g, name + "_b3b", branch3, 3, 1, 1, ch5x5);
    String branch4 = g.maxPoolCeil(name + "_b4pool", in, 3, 1);
    branch4 = basicConv(g, name + "_b4", branch4, 1, 1, 0, poolProjection);
    return g.concat(name, branch1, branch2, branch3, branch4);
  }

  private static String auxiliary(ZooGraph g, String name, String in) {
    String x = g.averagePool(name + "_pool", in, 5, 3);
    x = basicConv(g, name + "_conv", x, 1, 1, 0, 128);
    x = g.dense(name + "_fc1", x, 1024, Activation.RELU, 0);
    return g.output(name + "_output", x, 0.7, 0.3);
  }

  /**
   * torchvision's MobileNet v2: a 3x3/2 stem of 32 channels, 17 inverted residual blocks (1x1
   * expansion by t unless t = 1, 3x3 depthwise at the block's stride, each followed by BatchNorm
   * and ReLU6; a linear 1x1 projection with BatchNorm; the input added when the shapes agree), a
   * 1x1 convolution to 1280 with BatchNorm and ReLU6, global average pooling, dropout 0.2, linear
   * classifier: 3,504,872 parameters.
   */
  static ComputationGraphConfiguration mobilenetV2(ZooGraph g) {
    // expansion t, output channels c, repeats n, first stride s
    final int[][] settings = {
      {1, 16, 1, 1},
      {6, 24, 2, 2},
      {6, 32, 3, 2},
      {6, 64, 4, 2},
      {6, 96, 3, 1},
      {6, 160, 3, 2},
      {6, 320, 1, 1}
    };
    String x = convBnRelu6(g, "stem", ZooGraph.INPUT, 3, 2, 1, 32);
    int channels = 32;
    int index = 0;
    for (int[] setting : settings) {
      for (int repeat = 0; repeat < setting[2]; repeat++) {
        final int stride = repeat == 0 ? setting[3] : 1;
        final String name = "block" + ++index;
        final int hidden = channels * setting[0];
        String y = x;
        if (setting[0] != 1) {
          y = convBnRelu6(g, name + "_expand", y, 1, 1, 0, hidden);
        }
        y = g.depthwise(name + "_dw", y, hidden, stride);
        y = g.activation(name + "_dw_relu", g.batchNorm(name + "_dw_bn", y), Activation.RELU6);
        y = g.conv(name + "_project", y, 1, 1, 0, setting[1], false);
        y = g.batchNorm(name + "_project_bn", y);
        x = stride == 1 && channels == setting[1] ? g.add(name + "_add", x, y) : y;
        channels = setting[1];
      }
    }
    x = convBnRelu6(g, "head", x, 1, 1, 0, 1280);
    return g.build(g.output("output", g.globalAverage("pool", x), 0.2, 1));
  }

  private static String convBnRelu6(
      ZooGraph g, String name, String in, int kernel, int stride, int padding, int out) {
    final String x = g.conv(name, in, kernel, stride, padding, out, false);
    return g.activation(name + "_relu", g.batchNorm(name + "_bn", x), Activation.RELU6);
  }

  /**
   * MobileNet v1 (Howard et al. 2017, width 1.0): a 3x3/2 convolution to 32 channels, 13 depthwise
   * separable blocks (3x3 depthwise, BN, ReLU, 1x1 pointwise, BN, ReLU) to 64, 128, 128, 256, 256,
   * 512 (x6) and 1024 (x2) channels, five of them at stride 2, global average pooling, linear
   * classifier; convolutions without bias: 4,231,976 parameters (Keras's trainable count).
   */
  static ComputationGraphConfiguration mobilenetV1(ZooGraph g) {
    final int[][] blocks = {
      {64, 1}, {128, 2}, {128, 1}, {256, 2}, {256, 1}, {512, 2}, {512, 1}, {512, 1}, {512, 1},
      {512, 1}, {512, 1}, {1024, 2}, {1024, 1}
    };
    String x = g.conv("stem", ZooGraph.INPUT, 3, 2, 1, 32, false);
    x = g.relu("stem_relu", g.batchNorm("stem_bn", x));
    int channels = 32;
    for (int b = 0; b < blocks.length; b++) {
      final String name = "block" + (b + 1);
      x = g.depthwise(name + "_dw", x, channels, blocks[b][1]);
      x = g.relu(name + "_dw_relu", g.batchNorm(name + "_dw_bn", x));
      x = g.conv(name + "_pw", x, 1, 1, 0, blocks[b][0], false);
      x = g.relu(name + "_pw_relu", g.batchNorm(name + "_pw_bn", x));
      channels = blocks[b][0];
    }
    return g.build(g.output("output", g.globalAverage("pool", x)));
  }
}
