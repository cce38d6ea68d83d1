package io.lockstep.worker.engine;

import io.lockstep.cuda.Network;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.deeplearning4j.nn.api.Layer;
import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.graph.ElementWiseVertex;
import org.deeplearning4j.nn.conf.graph.LayerVertex;
import org.deeplearning4j.nn.conf.layers.ActivationLayer;
import org.deeplearning4j.nn.conf.layers.BatchNormalization;
import org.deeplearning4j.nn.conf.layers.ConvolutionLayer;
import org.deeplearning4j.nn.conf.layers.DenseLayer;
import org.deeplearning4j.nn.conf.layers.GlobalPoolingLayer;
import org.deeplearning4j.nn.conf.layers.OutputLayer;
import org.deeplearning4j.nn.conf.layers.PoolingType;
import org.deeplearning4j.nn.conf.layers.SubsamplingLayer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.nn.graph.vertex.GraphVertex;
import org.nd4j.linalg.activations.IActivation;
import org.nd4j.linalg.activations.impl.ActivationReLU;
import org.nd4j.linalg.activations.impl.ActivationSoftmax;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.lossfunctions.impl.LossMCXENT;

/**
 * A Deeplearning4j network as the CUDA engine describes it: the adapter between Deeplearning4j's
 * graph, which checkpoints, {@code model.zip} and evaluation keep using, and the engine's own
 * {@link Network} and flat parameter vector.
 *
 * <p>Each of the engine's parameters comes from one of Deeplearning4j's parameter arrays: a
 * convolution's {@code W} as it is ({@code [out, in, k, k]}, c order), a dense or output layer's
 * {@code W} transposed ({@code [in, out]} there, {@code [out, in]} in the engine), biases, and
 * batch norm's {@code gamma} and {@code beta}. Deeplearning4j's gradient is the batch's sum, the
 * engine's its mean.
 */
public final class GpuNetwork {
  private final Network network;
  private final List<Source> sources;

  /**
   * Where one engine parameter lives in Deeplearning4j's graph.
   *
   * @param layer the layer's vertex name
   * @param key its parameter key ({@code W}, {@code b}, {@code gamma}, {@code beta})
   * @param transpose whether Deeplearning4j stores it transposed ({@code [in, out]})
   * @param offset its offset in the engine's vector
   * @param size its element count
   */
  record Source(String layer, String key, boolean transpose, int offset, int size) {}

  private GpuNetwork(Network network, List<Source> sources) {
    this.network = network;
    this.sources = sources;
  }

  /**
   * Describes a graph for the CUDA engine.
   *
   * @param graph an initialized graph
   * @param channels its input's channels
   * @param height its input's height
   * @param width its input's width
   * @return the description and the parameters' mapping
   * @throws UnsupportedNetworkException naming the first layer or setting the engine cannot compute
   */
  public static GpuNetwork describe(ComputationGraph graph, int channels, int height, int width)
      throws UnsupportedNetworkException {
    final ComputationGraphConfiguration configuration = graph.getConfiguration();
    if (configuration.getNetworkInputs().size() != 1
        || configuration.getNetworkOutputs().size() != 1) {
      throw new UnsupportedNetworkException("a graph with more than one input or output");
    }
    final Map<String, Integer> index = new HashMap<>();
    index.put(configuration.getNetworkInputs().get(0), Network.INPUT);
    final List<Network.Node> nodes = new ArrayList<>();
    final List<String[]> parameterKeys = new ArrayList<>();
    final GraphVertex[] vertices = graph.getVertices();
    String last = null;
    for (int position : graph.topologicalSortOrder()) {
      final GraphVertex vertex = vertices[position];
      if (vertex.isInputVertex()) {
        continue;
      }
      if (last != null) {
        throw new UnsupportedNetworkException("an output layer before the end of the graph");
      }
      final String name = vertex.getVertexName();
      final List<String> inputs = configuration.getVertexInputs().get(name);
      final org.deeplearning4j.nn.conf.graph.GraphVertex conf =
          configuration.getVertices().get(name);
      final int[] in = new int[inputs.size()];
      for (int i = 0; i < in.length; i++) {
        in[i] = index.get(inputs.get(i));
      }
      final boolean output = add(name, in, conf, vertex, nodes, parameterKeys);
      index.put(name, nodes.size() - 1);
      if (output) {
        last = name;
      }
    }
    if (last == null || !last.equals(configuration.getNetworkOutputs().get(0))) {
      throw new UnsupportedNetworkException("a graph whose last vertex is not its output layer");
    }
    final Network network;
    try {
      network = new Network(channels, height, width, nodes);
    } catch (IllegalArgumentException e) {
      throw new UnsupportedNetworkException(
          "input " + channels + "x" + height + "x" + width + ": " + e.getMessage());
    }
    final List<Network.Parameter> parameters = network.parameters();
    if (parameters.size() != parameterKeys.size()) {
      throw new IllegalStateException(
          parameters.size()
              + " engine parameters for "
              + parameterKeys.size()
              + " of Deeplearning4j's");
    }
    final List<Source> sources = new ArrayList<>();
    for (int i = 0; i < parameters.size(); i++) {
      final String[] key = parameterKeys.get(i);
      final Network.Parameter p = parameters.get(i);
      final INDArray array = graph.getLayer(key[0]).getParam(key[1]);
      if (array == null || array.length() != p.size()) {
        throw new UnsupportedNetworkException(
            "layer "
                + key[0]
                + ": parameter "
                + key[1]
                + " has "
                + (array == null ? "no array" : array.length() + " values")
                + ", the engine's "
                + p.name()
                + " "
                + Arrays.toString(p.shape())
                + " needs "
                + p.size());
      }
      sources.add(new Source(key[0], key[1], key.length > 2, p.offset(), p.size()));
    }
    return new GpuNetwork(network, List.copyOf(sources));
  }

  /**
   * @return the engine's description
   */
  public Network network() {
    return network;
  }

  /**
   * @param graph the graph described
   * @return its parameters in the engine's layout
   */
  public float[] parameters(ComputationGraph graph) {
    final float[] values = new float[network.parameterCount()];
    for (Source s : sources) {
      final float[] part = engineLayout(graph.getLayer(s.layer()).getParam(s.key()), s.transpose());
      System.arraycopy(part, 0, values, s.offset(), s.size());
    }
    return values;
  }

  /**
   * Writes parameters in the engine's layout into the graph's parameter arrays.
   *
   * @param graph the graph described
   * @param values {@link Network#parameterCount()} values
   */
  public void setParameters(ComputationGraph graph, float[] values) {
    write(values, 1f, s -> graph.getLayer(s.layer()).getParam(s.key()));
  }

  /**
   * Writes the engine's gradient (the batch's mean) into the graph's gradient views, as the batch's
   * sum, where Deeplearning4j's own backward pass would put it.
   *
   * @param graph the graph described, its gradient view initialized
   * @param meanGradient {@link Network#parameterCount()} values
   * @param batch the samples the mean was over
   */
  public void setGradients(ComputationGraph graph, float[] meanGradient, int batch) {
    write(meanGradient, batch, s -> gradientView(graph.getLayer(s.layer()), s.key()));
  }

  /**
   * Reads the graph's gradient views (the batch's sum) as the engine's mean gradient.
   *
   * @param graph the graph described, after a backward pass
   * @param batch the samples it summed over
   * @return {@link Network#parameterCount()} values in the engine's layout
   */
  public float[] gradients(ComputationGraph graph, int batch) {
    final float[] values = new float[network.parameterCount()];
    for (Source s : sources) {
      final float[] part =
          engineLayout(gradientView(graph.getLayer(s.layer()), s.key()), s.transpose());
      for (int i = 0; i < part.length; i++) {
        values[s.offset() + i] = part[i] / batch;
      }
    }
    return values;
  }

  private void write(
      float[] values, float scale, java.util.function.Function<Source, INDArray> target) {
    if (values.length != network.parameterCount()) {
      throw new IllegalArgumentException(
          values.length + " values; the network has " + network.parameterCount() + " parameters");
    }
    for (Source s : sources) {
      final INDArray array = target.apply(s);
      final float[] part = Arrays.copyOfRange(values, s.offset(), s.offset() + s.size());
      if (scale != 1f) {
        for (int i = 0; i < part.length; i++) {
          part[i] *= scale;
        }
      }
      final long[] shape = array.shape();
      final INDArray source =
          s.transpose()
              ? org.nd4j.linalg.factory.Nd4j.create(part, new long[] {shape[1], shape[0]}, 'c')
                  .transpose()
              : org.nd4j.linalg.factory.Nd4j.create(part, shape, 'c');
      array.assign(source.castTo(array.dataType()));
    }
  }

  private static INDArray gradientView(Layer layer, String key) {
    return layer
        .conf()
        .getLayer()
        .initializer()
        .getGradientsFromFlattened(layer.conf(), layer.getGradientsViewArray())
        .get(key);
  }

  /** A parameter array's values in the engine's order: row-major, {@code [out, in]} for W. */
  private static float[] engineLayout(INDArray array, boolean transpose) {
    final INDArray ordered = (transpose ? array.transpose() : array).dup('c');
    return ordered.castTo(DataType.FLOAT).data().asFloat();
  }

  /** Adds a vertex's nodes; returns whether it is the output layer. */
  private static boolean add(
      String name,
      int[] in,
      org.deeplearning4j.nn.conf.graph.GraphVertex conf,
      GraphVertex vertex,
      List<Network.Node> nodes,
      List<String[]> keys)
      throws UnsupportedNetworkException {
    if (conf instanceof ElementWiseVertex add) {
      if (add.getOp() != ElementWiseVertex.Op.Add || in.length != 2 || in[0] == in[1]) {
        throw new UnsupportedNetworkException(
            "vertex " + name + ": only element-wise addition of two different inputs");
      }
      nodes.add(new Network.Add(name, in[0], in[1]));
      return false;
    }
    if (!(conf instanceof LayerVertex layerVertex) || !vertex.hasLayer()) {
      throw new UnsupportedNetworkException(
          "vertex " + name + " (" + conf.getClass().getSimpleName() + ")");
    }
    if (in.length != 1) {
      throw new UnsupportedNetworkException("layer " + name + " with " + in.length + " inputs");
    }
    final org.deeplearning4j.nn.conf.layers.Layer layerConf =
        CompiledNetwork.plainLayer(name, layerVertex, vertex.getLayer(), false);
    final int input = in[0];
    if (layerConf instanceof ConvolutionLayer c && c.getClass() == ConvolutionLayer.class) {
      CompiledNetwork.checkWindow(name, c.getConvolutionMode(), c.getDilation());
      CompiledNetwork.checkChannelsFirst(name, c.getCnn2dDataFormat());
      final int[] k = c.getKernelSize();
      final int[] s = c.getStride();
      final int[] p = c.getPadding();
      if (k[0] != k[1] || s[0] != s[1] || p[0] != p[1]) {
        throw new UnsupportedNetworkException(
            "layer " + name + ": a kernel, stride or padding that is not square");
      }
      nodes.add(new Network.Conv(name, input, (int) c.getNOut(), k[0], s[0], p[0], c.hasBias()));
      keys.add(new String[] {name, "W"});
      if (c.hasBias()) {
        keys.add(new String[] {name, "b"});
      }
      if (relu(name, c.getActivationFn())) {
        nodes.add(new Network.Relu(name + ".relu", nodes.size() - 1));
      }
      return false;
    }
    if (layerConf instanceof SubsamplingLayer s && s.getClass() == SubsamplingLayer.class) {
      CompiledNetwork.checkWindow(name, s.getConvolutionMode(), s.getDilation());
      CompiledNetwork.checkChannelsFirst(name, s.getCnn2dDataFormat());
      final int[] k = s.getKernelSize();
      final int[] st = s.getStride();
      final int[] p = s.getPadding();
      if (s.getPoolingType() != PoolingType.MAX) {
        throw new UnsupportedNetworkException("layer " + name + ": pooling other than max");
      }
      if (k[0] != k[1] || st[0] != st[1] || p[0] != p[1]) {
        throw new UnsupportedNetworkException("layer " + name + ": a window that is not square");
      }
      nodes.add(new Network.MaxPool(name, input, k[0], st[0], p[0]));
      return false;
    }
    if (layerConf instanceof GlobalPoolingLayer g) {
      if (g.getPoolingType() != PoolingType.AVG
          || !g.isCollapseDimensions()
          || !Arrays.equals(g.getPoolingDimensions(), new int[] {2, 3})) {
        throw new UnsupportedNetworkException(
            "layer " + name + ": global pooling other than average");
      }
      nodes.add(new Network.GlobalAverage(name, input));
      return false;
    }
    if (layerConf instanceof BatchNormalization b && b.getClass() == BatchNormalization.class) {
      CompiledNetwork.checkChannelsFirst(name, b.getCnn2DFormat());
      if (b.isLockGammaBeta()) {
        throw new UnsupportedNetworkException("layer " + name + ": BatchNorm with fixed gamma");
      }
      if (b.getEps() != Network.NORM_EPSILON
          || Math.abs(1 - b.getDecay() - Network.NORM_MOMENTUM) > 1e-12) {
        throw new UnsupportedNetworkException(
            "layer "
                + name
                + ": BatchNorm with eps "
                + b.getEps()
                + " and decay "
                + b.getDecay()
                + " (the engine's are "
                + Network.NORM_EPSILON
                + " and "
                + (1 - Network.NORM_MOMENTUM)
                + ")");
      }
      nodes.add(new Network.BatchNorm(name, input));
      keys.add(new String[] {name, "gamma"});
      keys.add(new String[] {name, "beta"});
      return false;
    }
    if (layerConf instanceof ActivationLayer a) {
      if (!(a.getActivationFn() instanceof ActivationReLU relu)
          || !CompiledNetwork.plainRelu(relu)) {
        throw new UnsupportedNetworkException("layer " + name + ": activation other than ReLU");
      }
      nodes.add(new Network.Relu(name, input));
      return false;
    }
    if (layerConf instanceof OutputLayer o && o.getClass() == OutputLayer.class) {
      if (!(o.getActivationFn() instanceof ActivationSoftmax)
          || !(o.getLossFn() instanceof LossMCXENT loss)
          || loss.getWeights() != null) {
        throw new UnsupportedNetworkException(
            "layer " + name + ": output other than softmax with unweighted cross-entropy");
      }
      nodes.add(new Network.Dense(name, input, (int) o.getNOut(), o.hasBias()));
      keys.add(new String[] {name, "W", "transpose"});
      if (o.hasBias()) {
        keys.add(new String[] {name, "b"});
      }
      return true;
    }
    if (layerConf instanceof DenseLayer d && d.getClass() == DenseLayer.class) {
      if (d.hasLayerNorm()) {
        throw new UnsupportedNetworkException("layer " + name + ": dense with layer norm");
      }
      nodes.add(new Network.Dense(name, input, (int) d.getNOut(), d.hasBias()));
      keys.add(new String[] {name, "W", "transpose"});
      if (d.hasBias()) {
        keys.add(new String[] {name, "b"});
      }
      if (relu(name, d.getActivationFn())) {
        nodes.add(new Network.Relu(name + ".relu", nodes.size() - 1));
      }
      return false;
    }
    throw new UnsupportedNetworkException(
        "layer " + name + " (" + layerConf.getClass().getSimpleName() + ")");
  }

  /** Whether a layer ends in a ReLU, fused here as a node of its own; no leaky ReLU on the GPU. */
  private static boolean relu(String name, IActivation activation)
      throws UnsupportedNetworkException {
    final FusedRelu relu = CompiledNetwork.relu(name, activation);
    if (relu != null && relu.slope() != 0) {
      throw new UnsupportedNetworkException(
          "layer " + name + " with leaky ReLU (the GPU engine has ReLU)");
    }
    return relu != null;
  }
}
