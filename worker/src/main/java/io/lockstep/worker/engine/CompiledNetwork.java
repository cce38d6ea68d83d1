package io.lockstep.worker.engine;

import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_BIAS;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_DIFF_BIAS;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_DIFF_DST;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_DIFF_SCALE;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_DIFF_SHIFT;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_DIFF_SRC;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_DIFF_WEIGHTS;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_DST;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_MEAN;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_SCALE;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_SHIFT;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_SRC;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_SRC_0;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_SRC_1;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_VARIANCE;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_WEIGHTS;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_WORKSPACE;
import static org.bytedeco.dnnl.global.dnnl.dnnl_a;
import static org.bytedeco.dnnl.global.dnnl.dnnl_ab;
import static org.bytedeco.dnnl.global.dnnl.dnnl_backward;
import static org.bytedeco.dnnl.global.dnnl.dnnl_batch_normalization_backward_desc_init;
import static org.bytedeco.dnnl.global.dnnl.dnnl_batch_normalization_forward_desc_init;
import static org.bytedeco.dnnl.global.dnnl.dnnl_binary_add;
import static org.bytedeco.dnnl.global.dnnl.dnnl_binary_desc_init;
import static org.bytedeco.dnnl.global.dnnl.dnnl_convolution_backward_data_desc_init;
import static org.bytedeco.dnnl.global.dnnl.dnnl_convolution_backward_weights_desc_init;
import static org.bytedeco.dnnl.global.dnnl.dnnl_convolution_direct;
import static org.bytedeco.dnnl.global.dnnl.dnnl_convolution_forward_desc_init;
import static org.bytedeco.dnnl.global.dnnl.dnnl_eltwise_backward_desc_init;
import static org.bytedeco.dnnl.global.dnnl.dnnl_eltwise_forward_desc_init;
import static org.bytedeco.dnnl.global.dnnl.dnnl_eltwise_relu;
import static org.bytedeco.dnnl.global.dnnl.dnnl_eltwise_relu_use_dst_for_bwd;
import static org.bytedeco.dnnl.global.dnnl.dnnl_format_tag_any;
import static org.bytedeco.dnnl.global.dnnl.dnnl_forward_training;
import static org.bytedeco.dnnl.global.dnnl.dnnl_inner_product_backward_data_desc_init;
import static org.bytedeco.dnnl.global.dnnl.dnnl_inner_product_backward_weights_desc_init;
import static org.bytedeco.dnnl.global.dnnl.dnnl_inner_product_forward_desc_init;
import static org.bytedeco.dnnl.global.dnnl.dnnl_nchw;
import static org.bytedeco.dnnl.global.dnnl.dnnl_pooling_avg_exclude_padding;
import static org.bytedeco.dnnl.global.dnnl.dnnl_pooling_max;
import static org.bytedeco.dnnl.global.dnnl.dnnl_pooling_v2_backward_desc_init;
import static org.bytedeco.dnnl.global.dnnl.dnnl_pooling_v2_forward_desc_init;
import static org.bytedeco.dnnl.global.dnnl.dnnl_post_ops_append_eltwise;
import static org.bytedeco.dnnl.global.dnnl.dnnl_post_ops_create;
import static org.bytedeco.dnnl.global.dnnl.dnnl_post_ops_destroy;
import static org.bytedeco.dnnl.global.dnnl.dnnl_primitive_attr_create;
import static org.bytedeco.dnnl.global.dnnl.dnnl_primitive_attr_destroy;
import static org.bytedeco.dnnl.global.dnnl.dnnl_primitive_attr_set_post_ops;
import static org.bytedeco.dnnl.global.dnnl.dnnl_query_diff_dst_md;
import static org.bytedeco.dnnl.global.dnnl.dnnl_query_diff_src_md;
import static org.bytedeco.dnnl.global.dnnl.dnnl_query_diff_weights_md;
import static org.bytedeco.dnnl.global.dnnl.dnnl_query_dst_md;
import static org.bytedeco.dnnl.global.dnnl.dnnl_query_src_md;
import static org.bytedeco.dnnl.global.dnnl.dnnl_query_weights_md;
import static org.bytedeco.dnnl.global.dnnl.dnnl_query_workspace_md;
import static org.bytedeco.dnnl.global.dnnl.dnnl_use_scale;
import static org.bytedeco.dnnl.global.dnnl.dnnl_use_shift;

import io.lockstep.models.ModelZoo;
import io.lockstep.worker.engine.Dnnl.Memory;
import io.lockstep.worker.engine.Dnnl.Scope;
import io.lockstep.worker.engine.Dnnl.Step;
import java.lang.ref.Reference;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;
import org.bytedeco.dnnl.dnnl_batch_normalization_desc_t;
import org.bytedeco.dnnl.dnnl_binary_desc_t;
import org.bytedeco.dnnl.dnnl_convolution_desc_t;
import org.bytedeco.dnnl.dnnl_eltwise_desc_t;
import org.bytedeco.dnnl.dnnl_inner_product_desc_t;
import org.bytedeco.dnnl.dnnl_memory_desc_t;
import org.bytedeco.dnnl.dnnl_pooling_v2_desc_t;
import org.bytedeco.dnnl.dnnl_post_ops;
import org.bytedeco.dnnl.dnnl_primitive_attr;
import org.bytedeco.dnnl.dnnl_primitive_desc;
import org.bytedeco.javacpp.FloatPointer;
import org.deeplearning4j.nn.api.Layer;
import org.deeplearning4j.nn.conf.CNN2DFormat;
import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.ConvolutionMode;
import org.deeplearning4j.nn.conf.InputPreProcessor;
import org.deeplearning4j.nn.conf.graph.ElementWiseVertex;
import org.deeplearning4j.nn.conf.graph.LayerVertex;
import org.deeplearning4j.nn.conf.layers.ActivationLayer;
import org.deeplearning4j.nn.conf.layers.BaseLayer;
import org.deeplearning4j.nn.conf.layers.BatchNormalization;
import org.deeplearning4j.nn.conf.layers.ConvolutionLayer;
import org.deeplearning4j.nn.conf.layers.DenseLayer;
import org.deeplearning4j.nn.conf.layers.GlobalPoolingLayer;
import org.deeplearning4j.nn.conf.layers.OutputLayer;
import org.deeplearning4j.nn.conf.layers.PoolingType;
import org.deeplearning4j.nn.conf.layers.SubsamplingLayer;
import org.deeplearning4j.nn.conf.preprocessor.CnnToFeedForwardPreProcessor;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.nn.graph.vertex.GraphVertex;
import org.deeplearning4j.nn.layers.FrozenLayer;
import org.deeplearning4j.nn.layers.FrozenLayerWithBackprop;
import org.nd4j.linalg.activations.IActivation;
import org.nd4j.linalg.activations.impl.ActivationIdentity;
import org.nd4j.linalg.activations.impl.ActivationReLU;
import org.nd4j.linalg.activations.impl.ActivationSoftmax;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.lossfunctions.impl.LossMCXENT;

/**
 * A Deeplearning4j network's training step computed by oneDNN primitives directly: forward and
 * backward, with the activations kept in the layouts oneDNN chooses from one layer to the next,
 * ReLU fused into the convolution or dense layer before it, no forward pass run twice and no
 * gradient computed for the input. The network stays Deeplearning4j's: weights are read from its
 * parameter views and gradients written into its gradient views, in the same places and with the
 * same meaning as its own backward pass (sums over the batch; running statistics as Deeplearning4j
 * moves them), so its updater, checkpoints and the parameter server are unchanged.
 *
 * <p>Computes graphs of convolutions (no dilation, Truncate or Strict mode), max pooling, global
 * average pooling, BatchNorm (trainable scale and shift), ReLU activation layers, element-wise
 * additions, dense layers and one softmax output layer with multi-class cross-entropy, with ReLU or
 * identity activations and no dropout, weight noise or gradient normalization. {@link #compile}
 * names the first thing it cannot compute.
 *
 * <p>Not thread-safe: one per replica. Plans (primitives and memories) are built per batch size and
 * kept; {@link #close} frees them.
 */
public final class CompiledNetwork implements AutoCloseable {
  private static final double ONE_ON_2LOGE_10 = 1.0 / (2 * Math.log(10.0));
  private static final int PLANS_KEPT = 4;

  private final List<Op> ops;
  private final String inputName;

  /** Channels, height and width of the input, from the first batch; null before it. */
  private long[] inputShape;

  private final Map<Integer, Plan> plans = new LinkedHashMap<>();
  private Consumer<String> layerDone;
  private boolean closed;

  private CompiledNetwork(List<Op> ops, String inputName) {
    this.ops = ops;
    this.inputName = inputName;
  }

  /**
   * Compiles an initialized network.
   *
   * @param network the network, its gradient view initialized; its parameter and gradient views are
   *     used in place
   * @return the compiled step
   * @throws UnsupportedNetworkException naming the first layer or setting it cannot compute
   */
  public static CompiledNetwork compile(ComputationGraph network)
      throws UnsupportedNetworkException {
    final String backend = Nd4j.getExecutioner().getEnvironmentInformation().getProperty("backend");
    if (!"CPU".equalsIgnoreCase(backend)) {
      // on a GPU backend the arrays live in device memory; cuDNN's helpers compute there instead
      throw new UnsupportedNetworkException("on ND4J's " + backend + " backend (CPU only)");
    }
    final ComputationGraphConfiguration configuration = network.getConfiguration();
    if (configuration.getNetworkInputs().size() != 1
        || configuration.getNetworkOutputs().size() != 1) {
      throw new UnsupportedNetworkException("a graph with more than one input or output");
    }
    final String input = configuration.getNetworkInputs().get(0);
    final List<Op> ops = new ArrayList<>();
    final GraphVertex[] vertices = network.getVertices();
    for (int index : network.topologicalSortOrder()) {
      final GraphVertex vertex = vertices[index];
      if (vertex.isInputVertex()) {
        continue;
      }
      final String name = vertex.getVertexName();
      final List<String> inputs = configuration.getVertexInputs().get(name);
      final org.deeplearning4j.nn.conf.graph.GraphVertex conf =
          configuration.getVertices().get(name);
      ops.add(op(name, inputs, conf, vertex));
    }
    final Op last = ops.get(ops.size() - 1);
    if (!(last instanceof Output) || !last.name.equals(configuration.getNetworkOutputs().get(0))) {
      throw new UnsupportedNetworkException("a graph whose last vertex is not its output layer");
    }
    for (int i = 0; i < ops.size() - 1; i++) {
      if (ops.get(i) instanceof Output) {
        throw new UnsupportedNetworkException("an output layer before the end of the graph");
      }
    }
    return new CompiledNetwork(ops, input);
  }

  private static Op op(
      String name,
      List<String> inputs,
      org.deeplearning4j.nn.conf.graph.GraphVertex conf,
      GraphVertex vertex)
      throws UnsupportedNetworkException {
    if (conf instanceof ElementWiseVertex add) {
      if (add.getOp() != ElementWiseVertex.Op.Add
          || inputs.size() != 2
          || inputs.get(0).equals(inputs.get(1))) {
        throw new UnsupportedNetworkException(
            "vertex " + name + ": only element-wise addition of two different inputs");
      }
      return new Add(name, inputs);
    }
    if (!(conf instanceof LayerVertex layerVertex) || !vertex.hasLayer()) {
      throw new UnsupportedNetworkException(
          "vertex " + name + " (" + conf.getClass().getSimpleName() + ")");
    }
    if (inputs.size() != 1) {
      throw new UnsupportedNetworkException("layer " + name + " with " + inputs.size() + " inputs");
    }
    final InputPreProcessor preProcessor = layerVertex.getPreProcessor();
    final Layer layer = vertex.getLayer();
    if (layer instanceof FrozenLayer || layer instanceof FrozenLayerWithBackprop) {
      // its conf is the wrapped layer's: without this check it would train like any other
      throw new UnsupportedNetworkException("frozen layer " + name + " (transfer learning)");
    }
    final org.deeplearning4j.nn.conf.layers.Layer layerConf = layer.conf().getLayer();
    if (layerConf.getIDropout() != null) {
      throw new UnsupportedNetworkException("layer " + name + " with dropout");
    }
    if (layerConf instanceof BaseLayer base
        && (base.getWeightNoise() != null
            || base.getGradientNormalization()
                != org.deeplearning4j.nn.conf.GradientNormalization.None)) {
      throw new UnsupportedNetworkException(
          "layer " + name + " with weight noise or gradient normalization");
    }
    if (preProcessor != null && !(preProcessor instanceof CnnToFeedForwardPreProcessor)) {
      throw new UnsupportedNetworkException(
          "layer " + name + " with input preprocessor " + preProcessor.getClass().getSimpleName());
    }
    final String in = inputs.get(0);
    if (layerConf instanceof ConvolutionLayer c && c.getClass() == ConvolutionLayer.class) {
      checkWindow(name, c.getConvolutionMode(), c.getDilation());
      checkChannelsFirst(name, c.getCnn2dDataFormat());
      return new Conv(
          name,
          in,
          layer,
          c.getNOut(),
          c.getKernelSize(),
          c.getStride(),
          c.getPadding(),
          c.hasBias(),
          relu(name, c.getActivationFn()));
    }
    if (layerConf instanceof SubsamplingLayer s && s.getClass() == SubsamplingLayer.class) {
      checkWindow(name, s.getConvolutionMode(), s.getDilation());
      checkChannelsFirst(name, s.getCnn2dDataFormat());
      if (s.getPoolingType() != PoolingType.MAX) {
        throw new UnsupportedNetworkException("layer " + name + ": pooling other than max");
      }
      return new MaxPool(name, in, s.getKernelSize(), s.getStride(), s.getPadding());
    }
    if (layerConf instanceof GlobalPoolingLayer g) {
      if (g.getPoolingType() != PoolingType.AVG
          || !g.isCollapseDimensions()
          || !Arrays.equals(g.getPoolingDimensions(), new int[] {2, 3})) {
        throw new UnsupportedNetworkException(
            "layer " + name + ": global pooling other than average");
      }
      return new GlobalAverage(name, in);
    }
    if (layerConf instanceof BatchNormalization b && b.getClass() == BatchNormalization.class) {
      checkChannelsFirst(name, b.getCnn2DFormat());
      if (b.isLockGammaBeta()) {
        throw new UnsupportedNetworkException("layer " + name + ": BatchNorm with fixed gamma");
      }
      return new Norm(name, in, layer, b.getEps(), b.getDecay(), b.isUseLogStd());
    }
    if (layerConf instanceof ActivationLayer a) {
      if (!(a.getActivationFn() instanceof ActivationReLU relu) || !plainRelu(relu)) {
        throw new UnsupportedNetworkException("layer " + name + ": activation other than ReLU");
      }
      return new Relu(name, in);
    }
    if (layerConf instanceof OutputLayer o && o.getClass() == OutputLayer.class) {
      if (!(o.getActivationFn() instanceof ActivationSoftmax)
          || !(o.getLossFn() instanceof LossMCXENT loss)
          || loss.getWeights() != null) {
        throw new UnsupportedNetworkException(
            "layer " + name + ": output other than softmax with unweighted cross-entropy");
      }
      return new Output(
          name,
          in,
          layer,
          o.getNOut(),
          o.hasBias(),
          format(preProcessor),
          loss.getSoftmaxClipEps());
    }
    if (layerConf instanceof DenseLayer d && d.getClass() == DenseLayer.class) {
      if (d.hasLayerNorm()) {
        throw new UnsupportedNetworkException("layer " + name + ": dense with layer norm");
      }
      return new Dense(
          name,
          in,
          layer,
          d.getNOut(),
          d.hasBias(),
          relu(name, d.getActivationFn()),
          format(preProcessor));
    }
    throw new UnsupportedNetworkException(
        "layer " + name + " (" + layerConf.getClass().getSimpleName() + ")");
  }

  private static CNN2DFormat format(InputPreProcessor preProcessor) {
    return preProcessor instanceof CnnToFeedForwardPreProcessor p
        ? p.getFormat()
        : CNN2DFormat.NCHW;
  }

  private static void checkWindow(String name, ConvolutionMode mode, int[] dilation)
      throws UnsupportedNetworkException {
    if (mode != ConvolutionMode.Truncate && mode != ConvolutionMode.Strict) {
      throw new UnsupportedNetworkException("layer " + name + " in convolution mode " + mode);
    }
    if (dilation != null && (dilation[0] != 1 || dilation[1] != 1)) {
      throw new UnsupportedNetworkException("layer " + name + " with dilation");
    }
  }

  /** The engine's tensors are channels first, as the zoo's models and their data are. */
  private static void checkChannelsFirst(String name, CNN2DFormat format)
      throws UnsupportedNetworkException {
    if (format != CNN2DFormat.NCHW) {
      throw new UnsupportedNetworkException("layer " + name + " in " + format + " layout");
    }
  }

  private static boolean relu(String name, IActivation activation)
      throws UnsupportedNetworkException {
    if (activation == null || activation instanceof ActivationIdentity) {
      return false;
    }
    if (activation instanceof ActivationReLU relu && plainRelu(relu)) {
      return true;
    }
    throw new UnsupportedNetworkException(
        "layer " + name + " with activation " + activation.getClass().getSimpleName());
  }

  /** max(0, x): no cap, no threshold, no leak (which oneDNN's post-op would ignore). */
  private static boolean plainRelu(ActivationReLU relu) {
    return relu.getMax() == null
        && (relu.getThreshold() == null || relu.getThreshold() == 0)
        && (relu.getNegativeSlope() == null || relu.getNegativeSlope() == 0);
  }

  /**
   * Forward and backward on one batch: the gradient, summed over the batch, lands in the network's
   * gradient views, and BatchNorm's running-statistics updates in theirs.
   *
   * @param features {@code [n, channels, height, width]}
   * @param labels one-hot {@code [n, classes]}
   * @return the mean cross-entropy over the batch (without regularization)
   */
  public double computeGradients(INDArray features, INDArray labels) {
    final int n = (int) features.size(0);
    if (features.rank() != 4) {
      throw new IllegalArgumentException(
          "features of shape "
              + Arrays.toString(features.shape())
              + "; the network takes [n, channels, height, width]");
    }
    if (inputShape != null
        && (features.size(1) != inputShape[0]
            || features.size(2) != inputShape[1]
            || features.size(3) != inputShape[2])) {
      throw new IllegalArgumentException(
          "features of shape "
              + Arrays.toString(features.shape())
              + "; the network takes [n, "
              + inputShape[0]
              + ", "
              + inputShape[1]
              + ", "
              + inputShape[2]
              + "]");
    }
    final long[] shape = {features.size(1), features.size(2), features.size(3)};
    final long classes = ((Dense) ops.get(ops.size() - 1)).outputs;
    if (labels.rank() != 2 || labels.size(0) != n || labels.size(1) != classes) {
      throw new IllegalArgumentException(
          "labels of shape "
              + Arrays.toString(labels.shape())
              + " for "
              + n
              + " images; the network predicts ["
              + n
              + ", "
              + classes
              + "]");
    }
    if (closed) {
      throw new IllegalStateException("the compiled network was closed");
    }
    final INDArray contiguous =
        features.ordering() == 'c' && !features.isView() ? features : features.dup('c');
    try {
      final Plan plan = plan(n, shape);
      plan.input.rebind(Dnnl.address(contiguous));
      plan.labels = labels.dup('c').data().asFloat();
      for (Action action : plan.forward) {
        action.run();
      }
      for (Action action : plan.backward) {
        action.run();
      }
      plan.scope.await();
      return plan.loss;
    } finally {
      // oneDNN reads the features' native buffer: keep its owner alive until the step is done
      Reference.reachabilityFence(contiguous);
      Reference.reachabilityFence(features);
    }
  }

  /** The plan of a batch size, built on first use; the first plan fixes the input's shape. */
  private Plan plan(int n, long[] shape) {
    Plan plan = plans.get(n);
    if (plan == null) {
      if (plans.size() == PLANS_KEPT) {
        final Integer oldest = plans.keySet().iterator().next();
        plans.remove(oldest).scope.close();
      }
      plan = new Plan(n, shape);
      plans.put(n, plan);
      inputShape = shape;
    }
    return plan;
  }

  /**
   * The primitives of the plans built so far, as {@code layer: implementation} in build order (the
   * implementation as {@code DNNL_VERBOSE} names it): what a test or a profile checks for oneDNN's
   * slow reference code ({@code ref:}).
   *
   * @return one line per primitive
   */
  public List<String> primitives() {
    final List<String> all = new ArrayList<>();
    plans.values().forEach(plan -> all.addAll(plan.scope.implementations()));
    return all;
  }

  /**
   * Sets who is told, during each {@link #computeGradients}, the name of each layer with parameters
   * as soon as its gradient (and running statistics) are final, last layer first.
   *
   * @param listener the receiver, or null for no one
   */
  public void onLayerDone(Consumer<String> listener) {
    this.layerDone = listener;
  }

  /** Frees every plan's native memory; the network cannot compute afterwards. */
  @Override
  public void close() {
    closed = true;
    plans.values().forEach(plan -> plan.scope.close());
    plans.clear();
  }

  /** One unit of a plan's work: a primitive on the stream, or Java between primitives. */
  private interface Action {
    void run();
  }

  /** A value flowing between operations, and the gradient flowing back. */
  private static final class Tensor {
    final long[] dims;
    final Memory data;
    final boolean needsDiff;
    Memory diff;
    int consumersLeft;

    Tensor(long[] dims, Memory data, boolean needsDiff) {
      this.dims = dims;
      this.data = data;
      this.needsDiff = needsDiff;
    }
  }

  /** Everything one batch size needs: memories, primitives and the order to run them in. */
  private final class Plan {
    final Scope scope = new Scope();
    final Memory input;
    final List<Action> forward = new ArrayList<>();
    final List<Action> backward = new ArrayList<>();
    final Map<String, Tensor> tensors = new HashMap<>();
    final Map<String, Integer> consumers = new HashMap<>();
    float[] labels;
    double loss;

    Plan(int n, long[] shape) {
      boolean built = false;
      try {
        final long[] dims = {n, shape[0], shape[1], shape[2]};
        input = scope.wrap(Dnnl.md(dims, dnnl_nchw), 0L);
        tensors.put(inputName, new Tensor(dims, input, false));
        for (Op op : ops) {
          for (String in : op.inputs) {
            consumers.merge(in, 1, Integer::sum);
          }
        }
        tensors.get(inputName).consumersLeft = consumers.getOrDefault(inputName, 0);
        final List<List<Action>> backwardPerOp = new ArrayList<>();
        for (Op op : ops) {
          final List<Action> back = new ArrayList<>();
          op.build(this, forward, back);
          backwardPerOp.add(back);
        }
        for (int i = backwardPerOp.size() - 1; i >= 0; i--) {
          backward.addAll(backwardPerOp.get(i));
        }
        built = true;
      } finally {
        if (!built) {
          scope.close();
        }
      }
    }

    Tensor tensor(String name) {
      return tensors.get(name);
    }

    /** Registers an operation's output, with a gradient memory of the same layout. */
    Tensor output(String name, long[] dims, Memory data) {
      final Tensor tensor = new Tensor(dims, data, true);
      tensor.diff = scope.allocate(data.md);
      tensor.consumersLeft = consumers.getOrDefault(name, 0);
      tensors.put(name, tensor);
      return tensor;
    }

    /**
     * Where an operation writes the gradient of one of its inputs: the input's gradient memory for
     * the last consumer in forward order (the first to run backward), else a scratch memory that an
     * added step sums into it.
     *
     * @return the memory to write, and in {@code back} after the caller's step the sum, if any
     */
    Memory diffTarget(Tensor input, List<Action> accumulate) {
      // built in forward order, run in reverse: the last consumer built is the first to write
      input.consumersLeft--;
      if (input.consumersLeft == 0) {
        return input.diff;
      }
      final Memory scratch = scope.allocate(input.diff.md);
      final Step sum = binaryAdd(input.diff, scratch, input.diff);
      accumulate.add(() -> sum.execute(scope.stream()));
      return scratch;
    }

    Step binaryAdd(Memory a, Memory b, Memory sum) {
      final dnnl_binary_desc_t desc = new dnnl_binary_desc_t();
      Dnnl.check(dnnl_binary_desc_init(desc, dnnl_binary_add, a.md, b.md, sum.md), "binary add");
      final dnnl_primitive_desc pd = scope.describe(desc, null, null, "an addition");
      return scope.step(
          pd,
          new int[] {DNNL_ARG_SRC_0, DNNL_ARG_SRC_1, DNNL_ARG_DST},
          new Memory[] {a, b, sum},
          "an addition");
    }

    Action run(Step step) {
      return () -> step.execute(scope.stream());
    }

    void done(String layer, List<Action> back) {
      back.add(
          () -> {
            final Consumer<String> listener = CompiledNetwork.this.layerDone;
            if (listener != null) {
              scope.await();
              listener.accept(layer);
            }
          });
    }
  }

  /** One vertex of the graph. */
  private abstract static class Op {
    final String name;
    final List<String> inputs;

    Op(String name, List<String> inputs) {
      this.name = name;
      this.inputs = inputs;
    }

    /**
     * Creates the primitives and memories for one batch size and appends the forward actions to
     * {@code forward} and this operation's backward actions, in their order, to {@code back}.
     */
    abstract void build(Plan plan, List<Action> forward, List<Action> back);
  }

  /**
   * Refuses data whose shape does not fit a layer's weights, before any memory is laid over them.
   */
  private static void checkInputs(Layer layer, long got, String name, String what) {
    final long expected =
        ((org.deeplearning4j.nn.conf.layers.FeedForwardLayer) layer.conf().getLayer()).getNIn();
    if (got != expected) {
      throw new IllegalArgumentException(
          "layer "
              + name
              + " takes "
              + expected
              + " "
              + what
              + ", the data gives it "
              + got
              + ": the images do not have the shape the model was built for");
    }
  }

  /**
   * A window's output size in Truncate mode, floor((in + 2p - k) / s) + 1: oneDNN's too with the
   * same padding on both sides.
   */
  private static long outputSize(long in, int kernel, int stride, int padding) {
    return (in + 2L * padding - kernel) / stride + 1;
  }

  /** A {C} vector over a [1, C] view. */
  private static dnnl_memory_desc_t vectorMd(INDArray view) {
    return Dnnl.md(new long[] {view.length()}, new long[] {view.stride(view.rank() - 1)});
  }

  /** A forward primitive descriptor, with ReLU fused as a post-op when {@code relu}. */
  private static dnnl_primitive_desc describeWithRelu(
      Scope scope, org.bytedeco.javacpp.Pointer operation, boolean relu, String what) {
    final dnnl_primitive_attr attributes = reluAttributes(relu);
    try {
      return scope.describe(operation, attributes, null, what);
    } finally {
      if (attributes != null) {
        dnnl_primitive_attr_destroy(attributes);
      }
    }
  }

  private static dnnl_primitive_attr reluAttributes(boolean relu) {
    if (!relu) {
      return null;
    }
    final dnnl_post_ops postOps = new dnnl_post_ops();
    Dnnl.check(dnnl_post_ops_create(postOps), "creating post-ops");
    Dnnl.check(
        dnnl_post_ops_append_eltwise(postOps, 1f, dnnl_eltwise_relu, 0f, 0f), "appending ReLU");
    final dnnl_primitive_attr attributes = new dnnl_primitive_attr();
    Dnnl.check(dnnl_primitive_attr_create(attributes), "creating attributes");
    Dnnl.check(dnnl_primitive_attr_set_post_ops(attributes, postOps), "setting post-ops");
    dnnl_post_ops_destroy(postOps);
    return attributes;
  }

  /**
   * The backward pass of a ReLU whose output is {@code output}: writes the gradient before it into
   * {@code into}.
   */
  private static Step reluBackward(Scope scope, Memory output, Memory diff, Memory into) {
    final dnnl_eltwise_desc_t forward = new dnnl_eltwise_desc_t();
    Dnnl.check(
        dnnl_eltwise_forward_desc_init(
            forward, dnnl_forward_training, dnnl_eltwise_relu_use_dst_for_bwd, output.md, 0f, 0f),
        "ReLU forward");
    final dnnl_primitive_desc hint = scope.describe(forward, null, null, "ReLU");
    final dnnl_eltwise_desc_t backward = new dnnl_eltwise_desc_t();
    Dnnl.check(
        dnnl_eltwise_backward_desc_init(
            backward, dnnl_eltwise_relu_use_dst_for_bwd, diff.md, output.md, 0f, 0f),
        "ReLU backward");
    final dnnl_primitive_desc pd = scope.describe(backward, null, hint, "ReLU backward");
    return scope.step(
        pd,
        new int[] {DNNL_ARG_DST, DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_SRC},
        new Memory[] {output, diff, into},
        "ReLU backward");
  }

  /** A memory in {@code md} filled from {@code view} before each use, unless they coincide. */
  private static Memory weightsIn(
      Plan plan, dnnl_memory_desc_t md, dnnl_memory_desc_t viewMd, INDArray view, List<Action> to) {
    final Memory source = plan.scope.wrap(viewMd, Dnnl.address(view));
    if (Dnnl.same(md, viewMd)) {
      return source;
    }
    final Memory target = plan.scope.allocate(md);
    to.add(plan.run(plan.scope.reorder(source, target)));
    return target;
  }

  /**
   * The gradient of a layer's input from the gradient of its output: weights in the layout the
   * backward primitive wants (the forward's when they agree), the result written where {@link
   * Plan#diffTarget} says.
   */
  private static void backwardData(
      Plan plan,
      List<Action> back,
      dnnl_primitive_desc bwdData,
      Memory forwardWeights,
      dnnl_memory_desc_t viewMd,
      INDArray view,
      Memory diffDst,
      Tensor in,
      String name) {
    final dnnl_memory_desc_t weightsMd = plan.scope.query(bwdData, dnnl_query_weights_md);
    final Memory weights =
        Dnnl.same(weightsMd, forwardWeights.md)
            ? forwardWeights
            : weightsIn(plan, weightsMd, viewMd, view, back);
    final List<Action> accumulate = new ArrayList<>();
    final Memory target = plan.diffTarget(in, accumulate);
    final dnnl_memory_desc_t diffSrcMd = plan.scope.query(bwdData, dnnl_query_diff_src_md);
    final Memory diffSrc =
        Dnnl.same(diffSrcMd, target.md) ? target : plan.scope.allocate(diffSrcMd);
    back.add(
        plan.run(
            plan.scope.step(
                bwdData,
                new int[] {DNNL_ARG_DIFF_DST, DNNL_ARG_WEIGHTS, DNNL_ARG_DIFF_SRC},
                new Memory[] {diffDst, weights, diffSrc},
                name)));
    if (diffSrc != target) {
      back.add(plan.run(plan.scope.reorder(diffSrc, target)));
    }
    back.addAll(accumulate);
  }

  /** A 2D convolution, its bias and a fused ReLU. */
  private static final class Conv extends Op {
    private final Layer layer;
    private final long outChannels;
    private final int[] kernel;
    private final int[] stride;
    private final int[] padding;
    private final boolean bias;
    private final boolean relu;

    Conv(
        String name,
        String input,
        Layer layer,
        long outChannels,
        int[] kernel,
        int[] stride,
        int[] padding,
        boolean bias,
        boolean relu) {
      super(name, List.of(input));
      this.layer = layer;
      this.outChannels = outChannels;
      this.kernel = kernel;
      this.stride = stride;
      this.padding = padding;
      this.bias = bias;
      this.relu = relu;
    }

    @Override
    void build(Plan plan, List<Action> forward, List<Action> back) {
      final Scope scope = plan.scope;
      final Tensor in = plan.tensor(inputs.get(0));
      final long n = in.dims[0];
      final long inChannels = in.dims[1];
      checkInputs(layer, inChannels, name, "channels");
      final long outH = outputSize(in.dims[2], kernel[0], stride[0], padding[0]);
      final long outW = outputSize(in.dims[3], kernel[1], stride[1], padding[1]);
      final long[] outDims = {n, outChannels, outH, outW};
      final long[] weightDims = {outChannels, inChannels, kernel[0], kernel[1]};
      final long[] strides = {stride[0], stride[1]};
      final long[] padL = {padding[0], padding[1]};
      // both sides padded alike, as outputSize assumes; rows no window reads get a zero gradient
      final long[] padR = padL;
      final INDArray w = layer.getParam("W");
      final INDArray b = bias ? layer.getParam("b") : null;
      final Map<String, INDArray> grads = ModelZoo.gradientViews(layer);
      final dnnl_memory_desc_t wViewMd = Dnnl.md(weightDims, w.stride());
      final dnnl_memory_desc_t biasMd = bias ? vectorMd(b) : null;
      // The previous layer's layout is kept, unless oneDNN has no kernel for it (channels that
      // are not a multiple of the block, as 6 in the CIFAR LeNet): then the convolution takes
      // the layout it prefers, through a reorder. The network's input is always reordered.
      final dnnl_memory_desc_t srcAny = Dnnl.md(in.dims, dnnl_format_tag_any);
      final dnnl_primitive_desc fwd =
          firstKernel(
              in.needsDiff ? List.of(in.data.md, srcAny) : List.of(srcAny),
              src ->
                  convolutionForward(
                      scope, src, weightDims, biasMd, outDims, strides, padL, padR, relu, name));
      Memory src = in.data;
      final dnnl_memory_desc_t srcMd = scope.query(fwd, dnnl_query_src_md);
      if (!Dnnl.same(srcMd, in.data.md)) {
        src = scope.allocate(srcMd);
        forward.add(plan.run(scope.reorder(in.data, src)));
      }
      final Memory weights =
          weightsIn(plan, scope.query(fwd, dnnl_query_weights_md), wViewMd, w, forward);
      final Memory dst = scope.allocate(scope.query(fwd, dnnl_query_dst_md));
      final Step step =
          scope.step(
              fwd,
              new int[] {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_BIAS, DNNL_ARG_DST},
              new Memory[] {src, weights, bias ? scope.wrap(biasMd, Dnnl.address(b)) : null, dst},
              name);
      forward.add(plan.run(step));
      final Tensor out = plan.output(name, outDims, dst);

      // backward: ReLU, then weights (reported), then data
      Memory diffDst = out.diff;
      if (relu) {
        final Memory beforeRelu = scope.allocate(dst.md);
        back.add(plan.run(reluBackward(scope, dst, out.diff, beforeRelu)));
        diffDst = beforeRelu;
      }
      // the output gradient as it is, unless oneDNN has only reference code for it (with
      // AVX-512, a plain source of 6 channels and a blocked gradient: the CIFAR LeNet's conv2);
      // then in the layout oneDNN prefers, through a reorder
      final dnnl_primitive_desc bwdWeights =
          firstKernel(
              List.of(dst.md, Dnnl.md(outDims, dnnl_format_tag_any)),
              diffDstLayout -> {
                final dnnl_convolution_desc_t bwdWeightsDesc = new dnnl_convolution_desc_t();
                Dnnl.check(
                    dnnl_convolution_backward_weights_desc_init(
                        bwdWeightsDesc,
                        dnnl_convolution_direct,
                        Dnnl.md(in.dims, dnnl_format_tag_any),
                        Dnnl.md(weightDims, dnnl_format_tag_any),
                        biasMd,
                        diffDstLayout,
                        strides,
                        padL,
                        padR),
                    "convolution backward weights " + name);
                return scope.describe(bwdWeightsDesc, null, fwd, "convolution backward weights");
              });
      Memory weightsDiffDst = diffDst;
      final dnnl_memory_desc_t weightsDiffDstMd = scope.query(bwdWeights, dnnl_query_diff_dst_md);
      if (!Dnnl.same(weightsDiffDstMd, diffDst.md)) {
        weightsDiffDst = scope.allocate(weightsDiffDstMd);
        back.add(plan.run(scope.reorder(diffDst, weightsDiffDst)));
      }
      // backward weights may want the source in another layout than forward (one input channel)
      Memory weightsSrc = src;
      final dnnl_memory_desc_t weightsSrcMd = scope.query(bwdWeights, dnnl_query_src_md);
      if (!Dnnl.same(weightsSrcMd, src.md)) {
        weightsSrc = scope.allocate(weightsSrcMd);
        back.add(plan.run(scope.reorder(src, weightsSrc)));
      }
      final INDArray gw = grads.get("W");
      final Memory gradW = scope.wrap(Dnnl.md(weightDims, gw.stride()), Dnnl.address(gw));
      final dnnl_memory_desc_t diffWeightsMd = scope.query(bwdWeights, dnnl_query_diff_weights_md);
      final Memory diffWeights =
          Dnnl.same(diffWeightsMd, gradW.md) ? gradW : scope.allocate(diffWeightsMd);
      final Step weightsStep =
          scope.step(
              bwdWeights,
              new int[] {
                DNNL_ARG_SRC, DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_WEIGHTS, DNNL_ARG_DIFF_BIAS
              },
              new Memory[] {
                weightsSrc,
                weightsDiffDst,
                diffWeights,
                bias ? scope.wrap(vectorMd(grads.get("b")), Dnnl.address(grads.get("b"))) : null
              },
              name);
      back.add(plan.run(weightsStep));
      if (diffWeights != gradW) {
        back.add(plan.run(scope.reorder(diffWeights, gradW)));
      }
      plan.done(name, back);
      if (in.needsDiff) {
        // into the input gradient's layout where oneDNN has a kernel for it, else its own
        final dnnl_primitive_desc bwdData =
            firstKernel(
                List.of(in.data.md, srcAny),
                diffSrc -> {
                  final dnnl_convolution_desc_t bwdDataDesc = new dnnl_convolution_desc_t();
                  Dnnl.check(
                      dnnl_convolution_backward_data_desc_init(
                          bwdDataDesc,
                          dnnl_convolution_direct,
                          diffSrc,
                          Dnnl.md(weightDims, dnnl_format_tag_any),
                          dst.md,
                          strides,
                          padL,
                          padR),
                      "convolution backward data " + name);
                  return scope.describe(bwdDataDesc, null, fwd, "convolution backward data");
                });
        backwardData(plan, back, bwdData, weights, wViewMd, w, diffDst, in, name);
      }
    }
  }

  /**
   * The descriptor of the first layout oneDNN has a generated kernel for, trying {@code layouts} in
   * order (the last one's when every one falls to its reference code, correct but tens of times
   * slower).
   */
  private static dnnl_primitive_desc firstKernel(
      List<dnnl_memory_desc_t> layouts,
      java.util.function.Function<dnnl_memory_desc_t, dnnl_primitive_desc> describe) {
    dnnl_primitive_desc pd = null;
    for (dnnl_memory_desc_t layout : layouts) {
      pd = describe.apply(layout);
      if (!Dnnl.isReference(pd)) {
        break;
      }
    }
    return pd;
  }

  /** A convolution's forward primitive descriptor for a source layout, ReLU fused when asked. */
  private static dnnl_primitive_desc convolutionForward(
      Scope scope,
      dnnl_memory_desc_t src,
      long[] weightDims,
      dnnl_memory_desc_t biasMd,
      long[] outDims,
      long[] strides,
      long[] padL,
      long[] padR,
      boolean relu,
      String name) {
    final dnnl_convolution_desc_t fwdDesc = new dnnl_convolution_desc_t();
    Dnnl.check(
        dnnl_convolution_forward_desc_init(
            fwdDesc,
            dnnl_forward_training,
            dnnl_convolution_direct,
            src,
            Dnnl.md(weightDims, dnnl_format_tag_any),
            biasMd,
            Dnnl.md(outDims, dnnl_format_tag_any),
            strides,
            padL,
            padR),
        "convolution " + name);
    return describeWithRelu(scope, fwdDesc, relu, "convolution " + name);
  }

  /** Max pooling with a window and stride. */
  private static final class MaxPool extends Op {
    private final int[] kernel;
    private final int[] stride;
    private final int[] padding;

    MaxPool(String name, String input, int[] kernel, int[] stride, int[] padding) {
      super(name, List.of(input));
      this.kernel = kernel;
      this.stride = stride;
      this.padding = padding;
    }

    @Override
    void build(Plan plan, List<Action> forward, List<Action> back) {
      final Tensor in = plan.tensor(inputs.get(0));
      final long outH = outputSize(in.dims[2], kernel[0], stride[0], padding[0]);
      final long outW = outputSize(in.dims[3], kernel[1], stride[1], padding[1]);
      pool(
          plan,
          forward,
          back,
          this,
          in,
          new long[] {in.dims[0], in.dims[1], outH, outW},
          dnnl_pooling_max,
          new long[] {kernel[0], kernel[1]},
          new long[] {stride[0], stride[1]},
          new long[] {padding[0], padding[1]},
          new long[] {padding[0], padding[1]});
    }
  }

  /** Average over each channel's whole map, to {@code [n, c, 1, 1]}. */
  private static final class GlobalAverage extends Op {
    GlobalAverage(String name, String input) {
      super(name, List.of(input));
    }

    @Override
    void build(Plan plan, List<Action> forward, List<Action> back) {
      final Tensor in = plan.tensor(inputs.get(0));
      pool(
          plan,
          forward,
          back,
          this,
          in,
          new long[] {in.dims[0], in.dims[1], 1, 1},
          dnnl_pooling_avg_exclude_padding,
          new long[] {in.dims[2], in.dims[3]},
          new long[] {1, 1},
          new long[] {0, 0},
          new long[] {0, 0});
    }
  }

  private static void pool(
      Plan plan,
      List<Action> forward,
      List<Action> back,
      Op op,
      Tensor in,
      long[] outDims,
      int algorithm,
      long[] kernel,
      long[] strides,
      long[] padL,
      long[] padR) {
    final Scope scope = plan.scope;
    final long[] dilation = {0, 0};
    final dnnl_pooling_v2_desc_t fwdDesc = new dnnl_pooling_v2_desc_t();
    Dnnl.check(
        dnnl_pooling_v2_forward_desc_init(
            fwdDesc,
            dnnl_forward_training,
            algorithm,
            in.data.md,
            Dnnl.md(outDims, dnnl_format_tag_any),
            strides,
            kernel,
            dilation,
            padL,
            padR),
        "pooling " + op.name);
    final dnnl_primitive_desc fwd = scope.describe(fwdDesc, null, null, "pooling");
    final Memory dst = scope.allocate(scope.query(fwd, dnnl_query_dst_md));
    final dnnl_memory_desc_t workspaceMd = scope.query(fwd, dnnl_query_workspace_md);
    final Memory workspace = algorithm == dnnl_pooling_max ? scope.allocate(workspaceMd) : null;
    forward.add(
        plan.run(
            scope.step(
                fwd,
                new int[] {DNNL_ARG_SRC, DNNL_ARG_DST, DNNL_ARG_WORKSPACE},
                new Memory[] {in.data, dst, workspace},
                op.name)));
    final Tensor out = plan.output(op.name, outDims, dst);
    if (!in.needsDiff) {
      return;
    }
    final dnnl_pooling_v2_desc_t bwdDesc = new dnnl_pooling_v2_desc_t();
    Dnnl.check(
        dnnl_pooling_v2_backward_desc_init(
            bwdDesc, algorithm, in.data.md, dst.md, strides, kernel, dilation, padL, padR),
        "pooling backward " + op.name);
    final dnnl_primitive_desc bwd = scope.describe(bwdDesc, null, fwd, "pooling backward");
    final List<Action> accumulate = new ArrayList<>();
    final Memory target = plan.diffTarget(in, accumulate);
    back.add(
        plan.run(
            scope.step(
                bwd,
                new int[] {DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_SRC, DNNL_ARG_WORKSPACE},
                new Memory[] {out.diff, target, workspace},
                op.name)));
    back.addAll(accumulate);
  }

  /** A ReLU activation layer. */
  private static final class Relu extends Op {
    Relu(String name, String input) {
      super(name, List.of(input));
    }

    @Override
    void build(Plan plan, List<Action> forward, List<Action> back) {
      final Scope scope = plan.scope;
      final Tensor in = plan.tensor(inputs.get(0));
      final dnnl_eltwise_desc_t desc = new dnnl_eltwise_desc_t();
      Dnnl.check(
          dnnl_eltwise_forward_desc_init(
              desc, dnnl_forward_training, dnnl_eltwise_relu_use_dst_for_bwd, in.data.md, 0f, 0f),
          "ReLU " + name);
      final dnnl_primitive_desc fwd = scope.describe(desc, null, null, "ReLU");
      final Memory dst = scope.allocate(in.data.md);
      forward.add(
          plan.run(
              scope.step(
                  fwd, new int[] {DNNL_ARG_SRC, DNNL_ARG_DST}, new Memory[] {in.data, dst}, name)));
      final Tensor out = plan.output(name, in.dims, dst);
      if (in.needsDiff) {
        final List<Action> accumulate = new ArrayList<>();
        final Memory target = plan.diffTarget(in, accumulate);
        back.add(plan.run(reluBackward(scope, dst, out.diff, target)));
        back.addAll(accumulate);
      }
    }
  }

  /** The sum of two tensors of one shape. */
  private static final class Add extends Op {
    Add(String name, List<String> inputs) {
      super(name, inputs);
    }

    @Override
    void build(Plan plan, List<Action> forward, List<Action> back) {
      final Scope scope = plan.scope;
      final Tensor a = plan.tensor(inputs.get(0));
      final Tensor b = plan.tensor(inputs.get(1));
      final Memory dst = scope.allocate(a.data.md);
      forward.add(plan.run(plan.binaryAdd(a.data, b.data, dst)));
      final Tensor out = plan.output(name, a.dims, dst);
      for (Tensor in : List.of(a, b)) {
        if (in.needsDiff) {
          final List<Action> accumulate = new ArrayList<>();
          final Memory target = plan.diffTarget(in, accumulate);
          back.add(plan.run(scope.reorder(out.diff, target)));
          back.addAll(accumulate);
        }
      }
    }
  }

  /** BatchNorm in training: batch statistics, trainable scale and shift, running statistics. */
  private static final class Norm extends Op {
    private final Layer layer;
    private final double eps;
    private final double decay;
    private final boolean logStd;

    Norm(String name, String input, Layer layer, double eps, double decay, boolean logStd) {
      super(name, List.of(input));
      this.layer = layer;
      this.eps = eps;
      this.decay = decay;
      this.logStd = logStd;
    }

    @Override
    void build(Plan plan, List<Action> forward, List<Action> back) {
      final Scope scope = plan.scope;
      final Tensor in = plan.tensor(inputs.get(0));
      final int channels = (int) in.dims[1];
      final int flags = dnnl_use_scale | dnnl_use_shift;
      final dnnl_batch_normalization_desc_t fwdDesc = new dnnl_batch_normalization_desc_t();
      Dnnl.check(
          dnnl_batch_normalization_forward_desc_init(
              fwdDesc, dnnl_forward_training, in.data.md, (float) eps, flags),
          "BatchNorm " + name);
      final dnnl_primitive_desc fwd = scope.describe(fwdDesc, null, null, "BatchNorm");
      final Memory dst = scope.allocate(in.data.md);
      final dnnl_memory_desc_t vector = Dnnl.md(new long[] {channels}, dnnl_a);
      final FloatPointer meanBuffer = scope.floats(channels);
      final FloatPointer varianceBuffer = scope.floats(channels);
      final Memory mean = scope.wrap(vector, meanBuffer.address());
      final Memory variance = scope.wrap(vector, varianceBuffer.address());
      final INDArray gamma = layer.getParam("gamma");
      final INDArray beta = layer.getParam("beta");
      final Memory scale = scope.wrap(vectorMd(gamma), Dnnl.address(gamma));
      final Memory shift = scope.wrap(vectorMd(beta), Dnnl.address(beta));
      forward.add(
          plan.run(
              scope.step(
                  fwd,
                  new int[] {
                    DNNL_ARG_SRC,
                    DNNL_ARG_DST,
                    DNNL_ARG_SCALE,
                    DNNL_ARG_SHIFT,
                    DNNL_ARG_MEAN,
                    DNNL_ARG_VARIANCE
                  },
                  new Memory[] {in.data, dst, scale, shift, mean, variance},
                  name)));
      final Map<String, INDArray> grads = ModelZoo.gradientViews(layer);
      final INDArray globalMean = layer.getParam("mean");
      final INDArray globalSpread = layer.getParam(logStd ? "log10stdev" : "var");
      final INDArray gradMean = grads.get("mean");
      final INDArray gradSpread = grads.get(logStd ? "log10stdev" : "var");
      final float[] batchMean = new float[channels];
      final float[] batchVariance = new float[channels];
      forward.add(
          () -> {
            plan.scope.await();
            meanBuffer.get(batchMean);
            varianceBuffer.get(batchVariance);
            for (int c = 0; c < channels; c++) {
              final double m = globalMean.getDouble(c);
              gradMean.putScalar(c, (m - batchMean[c]) * (1 - decay));
              final double s = globalSpread.getDouble(c);
              if (logStd) {
                final double std = Math.pow(10, s);
                final double current = std * std;
                final double next = decay * current + (1 - decay) * batchVariance[c];
                gradSpread.putScalar(c, Math.log(current / next) * ONE_ON_2LOGE_10);
              } else {
                gradSpread.putScalar(c, (s - batchVariance[c]) * (1 - decay));
              }
            }
          });
      final Tensor out = plan.output(name, in.dims, dst);

      final dnnl_batch_normalization_desc_t bwdDesc = new dnnl_batch_normalization_desc_t();
      Dnnl.check(
          dnnl_batch_normalization_backward_desc_init(
              bwdDesc, dnnl_backward, dst.md, in.data.md, (float) eps, flags),
          "BatchNorm backward " + name);
      final dnnl_primitive_desc bwd = scope.describe(bwdDesc, null, fwd, "BatchNorm backward");
      final INDArray gradGamma = grads.get("gamma");
      final INDArray gradBeta = grads.get("beta");
      final Memory diffScale = scope.wrap(vectorMd(gradGamma), Dnnl.address(gradGamma));
      final Memory diffShift = scope.wrap(vectorMd(gradBeta), Dnnl.address(gradBeta));
      final List<Action> accumulate = new ArrayList<>();
      final Memory target =
          in.needsDiff ? plan.diffTarget(in, accumulate) : scope.allocate(in.data.md);
      back.add(
          plan.run(
              scope.step(
                  bwd,
                  new int[] {
                    DNNL_ARG_SRC,
                    DNNL_ARG_MEAN,
                    DNNL_ARG_VARIANCE,
                    DNNL_ARG_DIFF_DST,
                    DNNL_ARG_SCALE,
                    DNNL_ARG_SHIFT,
                    DNNL_ARG_DIFF_SRC,
                    DNNL_ARG_DIFF_SCALE,
                    DNNL_ARG_DIFF_SHIFT
                  },
                  new Memory[] {
                    in.data, mean, variance, out.diff, scale, shift, target, diffScale, diffShift
                  },
                  name)));
      plan.done(name, back);
      back.addAll(accumulate);
    }
  }

  /** A dense layer, its bias and a fused ReLU. */
  private static class Dense extends Op {
    final Layer layer;
    final long outputs;
    final boolean bias;
    final boolean relu;
    final CNN2DFormat flattening;

    Dense(
        String name,
        String input,
        Layer layer,
        long outputs,
        boolean bias,
        boolean relu,
        CNN2DFormat flattening) {
      super(name, List.of(input));
      this.layer = layer;
      this.outputs = outputs;
      this.bias = bias;
      this.relu = relu;
      this.flattening = flattening;
    }

    /**
     * Deeplearning4j's {@code [inputs, outputs]} weights as oneDNN's {@code [outputs, inputs...]},
     * with the input dimensions in the order the preprocessor flattened them.
     */
    dnnl_memory_desc_t weightsMd(long[] inDims, INDArray view) {
      final long rows = view.stride(0);
      final long cols = view.stride(1);
      if (inDims.length == 2) {
        return Dnnl.md(new long[] {outputs, inDims[1]}, new long[] {cols, rows});
      }
      final long c = inDims[1];
      final long h = inDims[2];
      final long w = inDims[3];
      final long[] dims = {outputs, c, h, w};
      return flattening == CNN2DFormat.NHWC
          ? Dnnl.md(dims, new long[] {cols, rows, rows * w * c, rows * c})
          : Dnnl.md(dims, new long[] {cols, rows * h * w, rows * w, rows});
    }

    /** The destination layout: chosen by oneDNN, or plain where Java reads it. */
    dnnl_memory_desc_t destination(long n) {
      return Dnnl.md(new long[] {n, outputs}, dnnl_format_tag_any);
    }

    /** Appends what runs between this layer's forward primitive and its backward ones. */
    Memory afterForward(Plan plan, Memory dst, Tensor out, List<Action> forward) {
      return out.diff;
    }

    @Override
    void build(Plan plan, List<Action> forward, List<Action> back) {
      final Scope scope = plan.scope;
      final Tensor in = plan.tensor(inputs.get(0));
      final long n = in.dims[0];
      long inputs = 1;
      for (int d = 1; d < in.dims.length; d++) {
        inputs *= in.dims[d];
      }
      checkInputs(layer, inputs, name, "inputs");
      final INDArray w = layer.getParam("W");
      final INDArray b = bias ? layer.getParam("b") : null;
      final Map<String, INDArray> grads = ModelZoo.gradientViews(layer);
      final dnnl_memory_desc_t wViewMd = weightsMd(in.dims, w);
      final long[] wDims = new long[in.dims.length];
      wDims[0] = outputs;
      System.arraycopy(in.dims, 1, wDims, 1, in.dims.length - 1);
      final dnnl_memory_desc_t biasMd = bias ? vectorMd(b) : null;
      final dnnl_inner_product_desc_t fwdDesc = new dnnl_inner_product_desc_t();
      Dnnl.check(
          dnnl_inner_product_forward_desc_init(
              fwdDesc,
              dnnl_forward_training,
              in.data.md,
              Dnnl.md(wDims, dnnl_format_tag_any),
              biasMd,
              destination(n)),
          "dense " + name);
      final dnnl_primitive_desc fwd = describeWithRelu(scope, fwdDesc, relu, "dense " + name);
      final Memory weights =
          weightsIn(plan, scope.query(fwd, dnnl_query_weights_md), wViewMd, w, forward);
      final Memory dst = dstMemory(plan, scope.query(fwd, dnnl_query_dst_md), n);
      forward.add(
          plan.run(
              scope.step(
                  fwd,
                  new int[] {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_BIAS, DNNL_ARG_DST},
                  new Memory[] {
                    in.data, weights, bias ? scope.wrap(biasMd, Dnnl.address(b)) : null, dst
                  },
                  name)));
      final Tensor out = plan.output(name, new long[] {n, outputs}, dst);
      Memory diffDst = afterForward(plan, dst, out, forward);
      if (relu) {
        final Memory beforeRelu = scope.allocate(dst.md);
        back.add(plan.run(reluBackward(scope, dst, diffDst, beforeRelu)));
        diffDst = beforeRelu;
      }
      final dnnl_inner_product_desc_t bwdWeightsDesc = new dnnl_inner_product_desc_t();
      Dnnl.check(
          dnnl_inner_product_backward_weights_desc_init(
              bwdWeightsDesc, in.data.md, Dnnl.md(wDims, dnnl_format_tag_any), biasMd, dst.md),
          "dense backward weights " + name);
      final dnnl_primitive_desc bwdWeights =
          scope.describe(bwdWeightsDesc, null, fwd, "dense backward weights");
      final INDArray gw = grads.get("W");
      final Memory gradW = scope.wrap(weightsMd(in.dims, gw), Dnnl.address(gw));
      final dnnl_memory_desc_t diffWeightsMd = scope.query(bwdWeights, dnnl_query_diff_weights_md);
      final Memory diffWeights =
          Dnnl.same(diffWeightsMd, gradW.md) ? gradW : scope.allocate(diffWeightsMd);
      back.add(
          plan.run(
              scope.step(
                  bwdWeights,
                  new int[] {
                    DNNL_ARG_SRC, DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_WEIGHTS, DNNL_ARG_DIFF_BIAS
                  },
                  new Memory[] {
                    in.data,
                    diffDst,
                    diffWeights,
                    bias ? scope.wrap(vectorMd(grads.get("b")), Dnnl.address(grads.get("b"))) : null
                  },
                  name)));
      if (diffWeights != gradW) {
        back.add(plan.run(scope.reorder(diffWeights, gradW)));
      }
      plan.done(name, back);
      if (in.needsDiff) {
        final dnnl_inner_product_desc_t bwdDataDesc = new dnnl_inner_product_desc_t();
        Dnnl.check(
            dnnl_inner_product_backward_data_desc_init(
                bwdDataDesc, in.data.md, Dnnl.md(wDims, dnnl_format_tag_any), dst.md),
            "dense backward data " + name);
        backwardData(
            plan,
            back,
            scope.describe(bwdDataDesc, null, fwd, "dense backward data"),
            weights,
            wViewMd,
            w,
            diffDst,
            in,
            name);
      }
    }

    Memory dstMemory(Plan plan, dnnl_memory_desc_t md, long n) {
      return plan.scope.allocate(md); // n: the batch, for layouts Java reads
    }
  }

  /** The output layer: logits, then softmax and cross-entropy in Java, on {@code [n, k]}. */
  private static final class Output extends Dense {
    private final double clip;

    Output(
        String name,
        String input,
        Layer layer,
        long classes,
        boolean bias,
        CNN2DFormat flattening,
        double clip) {
      super(name, input, layer, classes, bias, false, flattening);
      this.clip = clip;
    }

    @Override
    dnnl_memory_desc_t destination(long n) {
      return Dnnl.md(new long[] {n, outputs}, dnnl_ab);
    }

    @Override
    Memory dstMemory(Plan plan, dnnl_memory_desc_t md, long n) {
      return plan.scope.wrap(md, plan.scope.floats(n * outputs).address());
    }

    @Override
    Memory afterForward(Plan plan, Memory dst, Tensor out, List<Action> forward) {
      final int n = (int) out.dims[0];
      final int k = (int) outputs;
      final FloatPointer logits = new FloatPointer(new Dnnl.Address(dst.address()));
      final FloatPointer gradient = plan.scope.floats((long) n * k);
      final Memory gradientMemory = plan.scope.wrap(dst.md, gradient.address());
      final float[] z = new float[n * k];
      final float[] g = new float[n * k];
      forward.add(
          () -> {
            plan.scope.await();
            logits.get(z);
            final float[] y = plan.labels;
            double loss = 0;
            for (int i = 0; i < n; i++) {
              double max = Double.NEGATIVE_INFINITY;
              for (int j = 0; j < k; j++) {
                max = Math.max(max, z[i * k + j]);
              }
              double sum = 0;
              for (int j = 0; j < k; j++) {
                sum += Math.exp(z[i * k + j] - max);
              }
              for (int j = 0; j < k; j++) {
                final double p = Math.exp(z[i * k + j] - max) / sum;
                g[i * k + j] = (float) (p - y[i * k + j]);
                if (y[i * k + j] != 0) {
                  loss -= y[i * k + j] * Math.log(Math.min(Math.max(p, clip), 1 - clip));
                }
              }
            }
            gradient.put(g);
            plan.loss = loss / n;
          });
      return gradientMemory;
    }
  }
}
