package io.lockstep.cuda;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/** The zoo's networks that the CUDA engine runs, described without Deeplearning4j. */
public final class Networks {
  /** The names {@link #named(String)} knows. */
  public static final List<String> NAMES = List.of("lenet", "resnet18-cifar");

  private Networks() {}

  /**
   * @param name one of {@link #NAMES}
   * @return that network
   * @throws IllegalArgumentException naming the known networks
   */
  public static Network named(String name) {
    switch (name.toLowerCase(Locale.ROOT)) {
      case "lenet":
        return lenet();
      case "resnet18-cifar":
        return resnet18Cifar();
      default:
        throw new IllegalArgumentException(
            "no network '" + name + "' for the CUDA engine; known: " + String.join(", ", NAMES));
    }
  }

  /**
   * The seeds' LeNet for 28x28 digits ({@code fashion-mnist-lenet}): conv 5x5x20 ReLU, max-pool 2,
   * conv 5x5x50 ReLU, max-pool 2, dense 500 ReLU, dense 10: 431,080 parameters.
   *
   * @return the network
   */
  public static Network lenet() {
    final Graph g = new Graph();
    int x = g.add(new Network.Conv("conv1", Network.INPUT, 20, 5, 1, 0, true));
    x = g.add(new Network.Relu("relu1", x));
    x = g.add(new Network.MaxPool("pool1", x, 2, 2, 0));
    x = g.add(new Network.Conv("conv2", x, 50, 5, 1, 0, true));
    x = g.add(new Network.Relu("relu2", x));
    x = g.add(new Network.MaxPool("pool2", x, 2, 2, 0));
    x = g.add(new Network.Dense("fc1", x, 500, true));
    x = g.add(new Network.Relu("relu3", x));
    g.add(new Network.Dense("output", x, 10, true));
    return new Network(1, 28, 28, g.nodes);
  }

  /**
   * ResNet-18 for CIFAR-10 (3x32x32), as {@code resnet18-cifar} and the PyTorch reference build it:
   * a 3x3 stem of 64 without pooling, four stages of two basic blocks (64, 128, 256, 512; the first
   * block of each later stage strides 2 with a 1x1 projection), global average pooling and a dense
   * layer of 10: 11,173,962 parameters.
   *
   * @return the network
   */
  public static Network resnet18Cifar() {
    final Graph g = new Graph();
    int x = g.add(new Network.Conv("conv1", Network.INPUT, 64, 3, 1, 1, false));
    x = g.add(new Network.BatchNorm("bn1", x));
    x = g.add(new Network.Relu("relu1", x));
    int channels = 64;
    final int[] widths = {64, 128, 256, 512};
    for (int stage = 0; stage < widths.length; stage++) {
      for (int block = 0; block < 2; block++) {
        final int stride = stage > 0 && block == 0 ? 2 : 1;
        x = basicBlock(g, "layer" + (stage + 1) + "." + block, x, channels, widths[stage], stride);
        channels = widths[stage];
      }
    }
    x = g.add(new Network.GlobalAverage("pool", x));
    g.add(new Network.Dense("fc", x, 10, true));
    return new Network(3, 32, 32, g.nodes);
  }

  private static int basicBlock(Graph g, String name, int input, int in, int out, int stride) {
    int x = g.add(new Network.Conv(name + ".conv1", input, out, 3, stride, 1, false));
    x = g.add(new Network.BatchNorm(name + ".bn1", x));
    x = g.add(new Network.Relu(name + ".relu1", x));
    x = g.add(new Network.Conv(name + ".conv2", x, out, 3, 1, 1, false));
    x = g.add(new Network.BatchNorm(name + ".bn2", x));
    int shortcut = input;
    if (stride != 1 || in != out) {
      shortcut = g.add(new Network.Conv(name + ".shortcut.0", input, out, 1, stride, 0, false));
      shortcut = g.add(new Network.BatchNorm(name + ".shortcut.1", shortcut));
    }
    x = g.add(new Network.Add(name + ".add", x, shortcut));
    return g.add(new Network.Relu(name + ".relu2", x));
  }

  private static final class Graph {
    final List<Network.Node> nodes = new ArrayList<>();

    int add(Network.Node node) {
      nodes.add(node);
      return nodes.size() - 1;
    }
  }
}
