package io.lockstep.models;

import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.nd4j.linalg.activations.Activation;

/** The small networks the seeds write out layer by layer. */
final class SeedModels {
  private SeedModels() {}

  /**
   * The seeds' LeNet for 28x28 digits: conv 5x5x20, max-pool 2, conv 5x5x50, max-pool 2, dense 500
   * ReLU, softmax: 431,080 parameters.
   */
  static ComputationGraphConfiguration lenet(ZooGraph g) {
    String x = g.conv("conv1", ZooGraph.INPUT, 5, 1, 0, 20, true, Activation.RELU);
    x = g.maxPool("pool1", x, 2, 2, 0);
    x = g.conv("conv2", x, 5, 1, 0, 50, true, Activation.RELU);
    x = g.maxPool("pool2", x, 2, 2, 0);
    x = g.dense("fc1", x, 500, Activation.RELU, 0);
    return g.build(g.output("output", x));
  }

  /**
   * The seeds' LeNet for CIFAR-10 (3x32x32), as PyTorch's CIFAR tutorial writes it: conv 3->6 5x5,
   * max-pool 2, conv 6->16 5x5, max-pool 2, fully connected 400->120->84->10, ReLU after every
   * layer but the last: 62,006 parameters.
   */
  static ComputationGraphConfiguration lenetCifar(ZooGraph g) {
    String x = g.conv("conv1", ZooGraph.INPUT, 5, 1, 0, 6, true, Activation.RELU);
    x = g.maxPool("pool1", x, 2, 2, 0);
    x = g.conv("conv2", x, 5, 1, 0, 16, true, Activation.RELU);
    x = g.maxPool("pool2", x, 2, 2, 0);
    x = g.dense("fc1", x, 120, Activation.RELU, 0);
    x = g.dense("fc2", x, 84, Activation.RELU, 0);
    return g.build(g.output("output", x));
  }

  /**
   * The seeds' {@code FeedForwardNet} for CIFAR-10: the image flattened, 3072->128->32->10, ReLU
   * between: 397,802 parameters.
   */
  static ComputationGraphConfiguration feedForward(ZooGraph g) {
    String x = g.dense("fc1", ZooGraph.INPUT, 128, Activation.RELU, 0);
    x = g.dense("fc2", x, 32, Activation.RELU, 0);
    return g.build(g.output("output", x));
  }

  /**
   * The seeds' simple CNN for 32x32 images: conv 3x3 to 32 channels (padding 1), ReLU, max-pool 2,
   * conv 3x3 to 64, ReLU, max-pool 2 (64x8x8 = 4096 features), fc 128 ReLU, fc to the classes:
   * 545,098 parameters.
   */
  static ComputationGraphConfiguration simpleCnn(ZooGraph g) {
    String x = g.conv("conv1", ZooGraph.INPUT, 3, 1, 1, 32, true, Activation.RELU);
    x = g.maxPool("pool1", x, 2, 2, 0);
    x = g.conv("conv2", x, 3, 1, 1, 64, true, Activation.RELU);
    x = g.maxPool("pool2", x, 2, 2, 0);
    x = g.dense("fc1", x, 128, Activation.RELU, 0);
    return g.build(g.output("output", x));
  }
}
