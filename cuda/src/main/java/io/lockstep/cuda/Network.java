package io.lockstep.cuda;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;

/**
 * A network as the CUDA engine runs it: nodes in topological order over NCHW tensors, ending in a
 * softmax cross-entropy loss (the batch's mean) over the last node. Node {@value #INPUT} is the
 * network's input.
 *
 * <p>Parameters live in one flat vector, node by node, each in PyTorch's layout: a convolution's
 * weight {@code [out, in, k, k]} then its bias, a batch norm's scale then shift, a dense layer's
 * weight {@code [out, in]} then its bias. Deeplearning4j flattens the same parameters in the same
 * layouts, so an adapter maps one vector onto the other without reordering.
 *
 * @param channels the input's channels
 * @param height the input's height
 * @param width the input's width
 * @param nodes the nodes, each reading only the input or earlier nodes
 */
public record Network(int channels, int height, int width, List<Node> nodes) {
  /** The index that names the network's input. */
  public static final int INPUT = -1;

  /** Batch norm's epsilon and running-average factor, PyTorch's defaults. */
  public static final double NORM_EPSILON = 1e-5;

  public static final double NORM_MOMENTUM = 0.1;

  /** One operation over earlier nodes' outputs. */
  public sealed interface Node {
    /**
     * @return a name unique in the network, for parameters and messages
     */
    String name();

    /**
     * @return the nodes it reads, {@link #INPUT} for the network's input
     */
    int[] inputs();
  }

  /** A 2-D convolution, square kernel, cross-correlation as cuDNN and PyTorch compute it. */
  public record Conv(
      String name, int input, int outChannels, int kernel, int stride, int pad, boolean bias)
      implements Node {
    @Override
    public int[] inputs() {
      return new int[] {input};
    }
  }

  /** Batch normalization over the batch and spatial positions, with batch statistics. */
  public record BatchNorm(String name, int input) implements Node {
    @Override
    public int[] inputs() {
      return new int[] {input};
    }
  }

  /** max(0, x). */
  public record Relu(String name, int input) implements Node {
    @Override
    public int[] inputs() {
      return new int[] {input};
    }
  }

  /** Max pooling; ties go to the first maximum in row-major order, as PyTorch's. */
  public record MaxPool(String name, int input, int kernel, int stride, int pad) implements Node {
    @Override
    public int[] inputs() {
      return new int[] {input};
    }
  }

  /** The mean over each channel's positions: {@code [n, c, h, w] -> [n, c, 1, 1]}. */
  public record GlobalAverage(String name, int input) implements Node {
    @Override
    public int[] inputs() {
      return new int[] {input};
    }
  }

  /** A fully connected layer over the flattened input: {@code y = x W^T + b}. */
  public record Dense(String name, int input, int outputs, boolean bias) implements Node {
    @Override
    public int[] inputs() {
      return new int[] {input};
    }
  }

  /** The element-wise sum of two nodes of one shape. */
  public record Add(String name, int left, int right) implements Node {
    @Override
    public int[] inputs() {
      return new int[] {left, right};
    }
  }

  /**
   * One parameter's place in the flat vector.
   *
   * @param name the node's name and {@code .weight} or {@code .bias}
   * @param shape its dimensions, PyTorch's layout
   * @param offset its first element in the flat vector
   * @param fanIn the inputs one output sees, for initialization (0 for batch norm)
   */
  public record Parameter(String name, int[] shape, int offset, int fanIn) {
    /**
     * @return its element count
     */
    public int size() {
      int size = 1;
      for (int d : shape) {
        size *= d;
      }
      return size;
    }
  }

  /**
   * Checks that every node reads earlier nodes and that shapes agree.
   *
   * @throws IllegalArgumentException naming the first node that does not fit
   */
  public Network {
    nodes = List.copyOf(nodes);
    if (nodes.isEmpty()) {
      throw new IllegalArgumentException("a network needs at least one node");
    }
    shapes(channels, height, width, nodes);
  }

  /**
   * @return output shapes {@code {c, h, w}}: the input's at [0], node i's at [i + 1]
   */
  public int[][] shapes() {
    return shapes(channels, height, width, nodes);
  }

  /**
   * @return the classes the loss is over: the last node's output size
   */
  public int classes() {
    final int[] last = shapes()[nodes.size()];
    return last[0] * last[1] * last[2];
  }

  /**
   * @return every parameter, in the flat vector's order
   */
  public List<Parameter> parameters() {
    final int[][] shapes = shapes();
    final List<Parameter> parameters = new ArrayList<>();
    int offset = 0;
    for (int i = 0; i < nodes.size(); i++) {
      final Node node = nodes.get(i);
      final int[] in = shapeOf(node.inputs()[0], shapes);
      if (node instanceof Conv c) {
        final int fanIn = in[0] * c.kernel() * c.kernel();
        offset =
            add(
                parameters,
                c.name() + ".weight",
                new int[] {c.outChannels(), in[0], c.kernel(), c.kernel()},
                offset,
                fanIn);
        if (c.bias()) {
          offset = add(parameters, c.name() + ".bias", new int[] {c.outChannels()}, offset, fanIn);
        }
      } else if (node instanceof BatchNorm b) {
        offset = add(parameters, b.name() + ".weight", new int[] {in[0]}, offset, 0);
        offset = add(parameters, b.name() + ".bias", new int[] {in[0]}, offset, 0);
      } else if (node instanceof Dense d) {
        final int fanIn = in[0] * in[1] * in[2];
        offset =
            add(parameters, d.name() + ".weight", new int[] {d.outputs(), fanIn}, offset, fanIn);
        if (d.bias()) {
          offset = add(parameters, d.name() + ".bias", new int[] {d.outputs()}, offset, fanIn);
        }
      }
    }
    return parameters;
  }

  /**
   * @return the flat vector's length
   */
  public int parameterCount() {
    final List<Parameter> parameters = parameters();
    if (parameters.isEmpty()) {
      return 0;
    }
    final Parameter last = parameters.get(parameters.size() - 1);
    return last.offset() + last.size();
  }

  /**
   * PyTorch's default initialization, seeded: weights and biases uniform in {@code ±1/sqrt(fanIn)}
   * (Conv2d's and Linear's {@code reset_parameters}), batch norm's scale 1 and shift 0.
   *
   * @param seed the generator's seed
   * @return a flat parameter vector
   */
  public float[] initialParameters(long seed) {
    final SplittableRandom random = new SplittableRandom(seed);
    final float[] values = new float[parameterCount()];
    for (Parameter p : parameters()) {
      final boolean scale = p.fanIn() == 0 && p.name().endsWith(".weight");
      final double bound = p.fanIn() == 0 ? 0 : 1 / Math.sqrt(p.fanIn());
      for (int i = 0; i < p.size(); i++) {
        values[p.offset() + i] =
            scale ? 1f : p.fanIn() == 0 ? 0f : (float) random.nextDouble(-bound, bound);
      }
    }
    return values;
  }

  /**
   * @return the description as JSON, for tools that build the same network elsewhere
   */
  public String toJson() {
    final StringBuilder json = new StringBuilder();
    json.append("{\n  \"input\": [").append(channels).append(", ").append(height).append(", ");
    json.append(width).append("],\n  \"nodes\": [\n");
    for (int i = 0; i < nodes.size(); i++) {
      final Node node = nodes.get(i);
      json.append("    {\"op\": \"").append(opName(node)).append("\", \"name\": \"");
      json.append(node.name()).append("\", \"inputs\": ").append(list(node.inputs()));
      if (node instanceof Conv c) {
        json.append(
            String.format(
                Locale.ROOT,
                ", \"out\": %d, \"kernel\": %d, \"stride\": %d, \"pad\": %d, \"bias\": %b",
                c.outChannels(),
                c.kernel(),
                c.stride(),
                c.pad(),
                c.bias()));
      } else if (node instanceof MaxPool m) {
        json.append(
            String.format(
                Locale.ROOT,
                ", \"kernel\": %d, \"stride\": %d, \"pad\": %d",
                m.kernel(),
                m.stride(),
                m.pad()));
      } else if (node instanceof Dense d) {
        json.append(
            String.format(Locale.ROOT, ", \"out\": %d, \"bias\": %b", d.outputs(), d.bias()));
      } else if (node instanceof BatchNorm) {
        json.append(
            String.format(
                Locale.ROOT, ", \"eps\": %s, \"momentum\": %s", NORM_EPSILON, NORM_MOMENTUM));
      }
      json.append(i + 1 < nodes.size() ? "},\n" : "}\n");
    }
    json.append("  ],\n  \"parameters\": [\n");
    final List<Parameter> parameters = parameters();
    for (int i = 0; i < parameters.size(); i++) {
      final Parameter p = parameters.get(i);
      json.append("    {\"name\": \"").append(p.name()).append("\", \"shape\": ");
      json.append(list(p.shape())).append(", \"offset\": ").append(p.offset());
      json.append(i + 1 < parameters.size() ? "},\n" : "}\n");
    }
    return json.append("  ]\n}\n").toString();
  }

  static String opName(Node node) {
    if (node instanceof Conv) {
      return "conv";
    } else if (node instanceof BatchNorm) {
      return "batch_norm";
    } else if (node instanceof Relu) {
      return "relu";
    } else if (node instanceof MaxPool) {
      return "max_pool";
    } else if (node instanceof GlobalAverage) {
      return "global_average";
    } else if (node instanceof Dense) {
      return "dense";
    }
    return "add";
  }

  private static String list(int[] values) {
    final StringBuilder list = new StringBuilder("[");
    for (int i = 0; i < values.length; i++) {
      list.append(i == 0 ? "" : ", ").append(values[i]);
    }
    return list.append(']').toString();
  }

  private static int add(
      List<Parameter> parameters, String name, int[] shape, int offset, int fanIn) {
    final Parameter p = new Parameter(name, shape, offset, fanIn);
    parameters.add(p);
    return offset + p.size();
  }

  private static int[] shapeOf(int index, int[][] shapes) {
    return shapes[index + 1];
  }

  /** Shapes with the input at [0] and node i at [i + 1]; checks every node. */
  private static int[][] shapes(int channels, int height, int width, List<Node> nodes) {
    if (channels <= 0 || height <= 0 || width <= 0) {
      throw new IllegalArgumentException(
          "the input shape " + channels + "x" + height + "x" + width + " must be positive");
    }
    final int[][] shapes = new int[nodes.size() + 1][];
    shapes[0] = new int[] {channels, height, width};
    for (int i = 0; i < nodes.size(); i++) {
      final Node node = nodes.get(i);
      for (int input : node.inputs()) {
        if (input < INPUT || input >= i) {
          throw new IllegalArgumentException(
              "node "
                  + i
                  + " ("
                  + node.name()
                  + ") reads node "
                  + input
                  + ", which does not come before it");
        }
      }
      final int[] in = shapes[node.inputs()[0] + 1];
      shapes[i + 1] = shapeOf(node, in, shapes);
    }
    return shapes;
  }

  private static int[] shapeOf(Node node, int[] in, int[][] shapes) {
    if (node instanceof Conv c) {
      final int h = (in[1] + 2 * c.pad() - c.kernel()) / c.stride() + 1;
      final int w = (in[2] + 2 * c.pad() - c.kernel()) / c.stride() + 1;
      return positive(node, new int[] {c.outChannels(), h, w});
    } else if (node instanceof MaxPool m) {
      final int h = (in[1] + 2 * m.pad() - m.kernel()) / m.stride() + 1;
      final int w = (in[2] + 2 * m.pad() - m.kernel()) / m.stride() + 1;
      return positive(node, new int[] {in[0], h, w});
    } else if (node instanceof GlobalAverage) {
      return new int[] {in[0], 1, 1};
    } else if (node instanceof Dense d) {
      return positive(node, new int[] {d.outputs(), 1, 1});
    } else if (node instanceof Add a) {
      final int[] right = shapes[a.right() + 1];
      if (!Arrays.equals(in, right)) {
        throw new IllegalArgumentException(
            "node "
                + a.name()
                + " adds shapes "
                + Arrays.toString(in)
                + " and "
                + Arrays.toString(right)
                + ", which differ");
      }
    }
    return in.clone();
  }

  private static int[] positive(Node node, int[] shape) {
    for (int d : shape) {
      if (d <= 0) {
        throw new IllegalArgumentException(
            "node "
                + node.name()
                + " would output "
                + Arrays.toString(shape)
                + ": its input is too small for its kernel");
      }
    }
    return shape;
  }
}
