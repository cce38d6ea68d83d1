package io.lockstep.worker.engine;

import static org.bytedeco.dnnl.global.dnnl.dnnl_pooling_avg_exclude_padding;
import static org.bytedeco.dnnl.global.dnnl.dnnl_pooling_avg_include_padding;
import static org.bytedeco.dnnl.global.dnnl.dnnl_pooling_max;

import io.lockstep.conf.Precision;
import io.lockstep.models.SampleDropout;
import java.lang.ref.Reference;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Consumer;
import org.deeplearning4j.nn.api.Layer;
import org.deeplearning4j.nn.conf.CNN2DFormat;
import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.ConvolutionMode;
import org.deeplearning4j.nn.conf.InputPreProcessor;
import org.deeplearning4j.nn.conf.RNNFormat;
import org.deeplearning4j.nn.conf.graph.ElementWiseVertex;
import org.deeplearning4j.nn.conf.graph.LayerVertex;
import org.deeplearning4j.nn.conf.graph.MergeVertex;
import org.deeplearning4j.nn.conf.graph.PreprocessorVertex;
import org.deeplearning4j.nn.conf.graph.rnn.LastTimeStepVertex;
import org.deeplearning4j.nn.conf.layers.ActivationLayer;
import org.deeplearning4j.nn.conf.layers.BaseLayer;
import org.deeplearning4j.nn.conf.layers.BatchNormalization;
import org.deeplearning4j.nn.conf.layers.ConvolutionLayer;
import org.deeplearning4j.nn.conf.layers.DenseLayer;
import org.deeplearning4j.nn.conf.layers.DepthwiseConvolution2D;
import org.deeplearning4j.nn.conf.layers.EmbeddingSequenceLayer;
import org.deeplearning4j.nn.conf.layers.GlobalPoolingLayer;
import org.deeplearning4j.nn.conf.layers.LSTM;
import org.deeplearning4j.nn.conf.layers.OutputLayer;
import org.deeplearning4j.nn.conf.layers.PoolingType;
import org.deeplearning4j.nn.conf.layers.SubsamplingLayer;
import org.deeplearning4j.nn.conf.preprocessor.CnnToFeedForwardPreProcessor;
import org.deeplearning4j.nn.conf.preprocessor.FeedForwardToCnnPreProcessor;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.nn.graph.vertex.GraphVertex;
import org.deeplearning4j.nn.layers.FrozenLayer;
import org.deeplearning4j.nn.layers.FrozenLayerWithBackprop;
import org.nd4j.linalg.activations.IActivation;
import org.nd4j.linalg.activations.impl.ActivationIdentity;
import org.nd4j.linalg.activations.impl.ActivationLReLU;
import org.nd4j.linalg.activations.impl.ActivationReLU;
import org.nd4j.linalg.activations.impl.ActivationReLU6;
import org.nd4j.linalg.activations.impl.ActivationSigmoid;
import org.nd4j.linalg.activations.impl.ActivationSoftmax;
import org.nd4j.linalg.activations.impl.ActivationTanH;
import org.nd4j.linalg.api.buffer.DataType;
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
 * <p>Computes convolutions (depthwise and dilated too; Truncate or Strict mode), max pooling (Same
 * mode too), average and global average pooling, BatchNorm (trainable scale and shift), ReLU, leaky
 * ReLU and ReLU6 activation layers, element-wise additions, concatenations along channels, dense
 * layers and softmax output layers with multi-class cross-entropy weighted alike for every class
 * (several, each learning the image's class) or YOLOv2's loss, with ReLU, leaky ReLU or identity
 * activations, {@link SampleDropout} before dense layers and no other dropout, weight noise or
 * gradient normalization; and, for a second input of token ids, an embedding, LSTMs over its
 * sequence, the sequence's last step and rows read as images ({@link Embedding}, {@link Lstm}).
 * {@link #compile} names the first thing it cannot compute.
 *
 * <p>In bfloat16 ({@link Precision#BF16}) convolutions and dense layers read bfloat16 copies of
 * their inputs, weights and output gradients, which reorders make each step, and accumulate and
 * write their outputs and gradients in float32; every other op, and the parameters and gradients
 * that Deeplearning4j holds, stay float32, as in PyTorch's CPU autocast.
 *
 * <p>Not thread-safe: one per replica. Plans (primitives and memories) are built per batch size and
 * kept; {@link #close} frees them.
 */
public final class CompiledNetwork implements AutoCloseable {
  private static final int PLANS_KEPT = 4;

  final List<Op> ops;

  /** The network's inputs, in its order. */
  final List<String> inputNames;

  /** The inputs an embedding reads: token ids {@code [n, length]}. */
  private final Set<String> tokenInputs;

  /** Whether convolutions and dense layers read bfloat16 ({@link Precision#BF16}). */
  final boolean bf16;

  /** Each input's shape in the first batch; null before it. */
  private long[][] inputShapes;

  private final Map<Integer, Plan> plans = new LinkedHashMap<>();
  Consumer<String> layerDone;
  private boolean closed;

  private CompiledNetwork(List<Op> ops, List<String> inputNames, boolean bf16) {
    this.ops = ops;
    this.inputNames = List.copyOf(inputNames);
    this.tokenInputs = new HashSet<>();
    for (Op op : ops) {
      if (op instanceof Embedding) {
        tokenInputs.addAll(op.inputs);
      }
    }
    this.bf16 = bf16;
  }

  /**
   * Whether this CPU computes bfloat16 with its own instructions (AVX512_BF16 or AMX), which {@link
   * Precision#BF16} needs: oneDNN emulates them elsewhere, slower than float32.
   *
   * @return true when it does
   */
  public static boolean computesBf16() {
    return Dnnl.nativeBf16();
  }

  /**
   * @return the instruction set oneDNN generates its kernels for on this CPU, as {@code
   *     DNNL_VERBOSE} names it ({@code avx512_core_bf16}, ...)
   */
  public static String instructionSet() {
    return Dnnl.cpuIsa();
  }

  /**
   * Compiles an initialized network.
   *
   * @param network the network, its gradient view initialized; its parameter and gradient views are
   *     used in place
   * @return the compiled step, in float32
   * @throws UnsupportedNetworkException naming the first layer or setting it cannot compute
   */
  public static CompiledNetwork compile(ComputationGraph network)
      throws UnsupportedNetworkException {
    return compile(network, Precision.FP32);
  }

  /**
   * Compiles an initialized network for a precision.
   *
   * @param network the network, its gradient view initialized; its parameter and gradient views are
   *     used in place
   * @param precision the number format of convolutions and dense layers
   * @return the compiled step
   * @throws UnsupportedNetworkException naming the first layer or setting it cannot compute
   * @throws IllegalStateException when {@code precision} is bfloat16 and this CPU does not compute
   *     it ({@link #computesBf16})
   */
  public static CompiledNetwork compile(ComputationGraph network, Precision precision)
      throws UnsupportedNetworkException {
    final boolean bf16 = precision == Precision.BF16;
    if (bf16 && !computesBf16()) {
      throw new IllegalStateException(
          "bfloat16 needs a CPU with AVX512_BF16 or AMX; oneDNN's instruction set here is "
              + instructionSet());
    }
    final String backend = Nd4j.getExecutioner().getEnvironmentInformation().getProperty("backend");
    if (!"CPU".equalsIgnoreCase(backend)) {
      // on a GPU backend the arrays live in device memory; cuDNN's helpers compute there instead
      throw new UnsupportedNetworkException("on ND4J's " + backend + " backend (CPU only)");
    }
    final ComputationGraphConfiguration configuration = network.getConfiguration();
    final List<String> inputs = configuration.getNetworkInputs();
    final List<Op> ops = new ArrayList<>();
    final GraphVertex[] vertices = network.getVertices();
    for (int index : network.topologicalSortOrder()) {
      final GraphVertex vertex = vertices[index];
      if (vertex.isInputVertex()) {
        continue;
      }
      final String name = vertex.getVertexName();
      final org.deeplearning4j.nn.conf.graph.GraphVertex conf =
          configuration.getVertices().get(name);
      final List<String> in =
          dropped(ops, name, configuration.getVertexInputs().get(name), conf, vertex);
      ops.add(op(name, in, conf, vertex));
    }
    checkOutputs(ops, configuration.getNetworkOutputs());
    checkSequences(ops, inputs);
    return new CompiledNetwork(ops, inputs, bf16);
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
    if (conf instanceof MergeVertex merge) {
      if (merge.getMergeAxis() != 1 || inputs.size() < 2) {
        throw new UnsupportedNetworkException(
            "vertex " + name + ": only concatenation of two or more inputs along channels");
      }
      return new Concat(name, inputs);
    }
    if (conf instanceof LastTimeStepVertex) {
      // takes the last step of every sequence: the engine is given no masks
      return new LastStep(name, inputs.get(0));
    }
    if (conf instanceof PreprocessorVertex p
        && p.getPreProcessor() instanceof FeedForwardToCnnPreProcessor images) {
      return new Unflatten(
          name,
          inputs.get(0),
          images.getNumChannels(),
          images.getInputHeight(),
          images.getInputWidth());
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
    final org.deeplearning4j.nn.conf.layers.Layer layerConf =
        plainLayer(name, layerVertex, layer, true);
    final String in = inputs.get(0);
    if (layerConf instanceof ConvolutionLayer c && c.getClass() == ConvolutionLayer.class) {
      checkMode(name, c.getConvolutionMode());
      checkChannelsFirst(name, c.getCnn2dDataFormat());
      return new Conv(
          name,
          in,
          layer,
          c.getNOut(),
          c.getKernelSize(),
          c.getStride(),
          c.getPadding(),
          c.getDilation(),
          c.hasBias(),
          relu(name, c.getActivationFn()),
          false);
    }
    if (layerConf instanceof DepthwiseConvolution2D c) {
      checkMode(name, c.getConvolutionMode());
      checkChannelsFirst(name, c.getCnn2dDataFormat());
      return new Conv(
          name,
          in,
          layer,
          c.getNOut(),
          c.getKernelSize(),
          c.getStride(),
          c.getPadding(),
          c.getDilation(),
          c.hasBias(),
          relu(name, c.getActivationFn()),
          true);
    }
    if (layerConf instanceof SubsamplingLayer s && s.getClass() == SubsamplingLayer.class) {
      final boolean same =
          s.getConvolutionMode() == ConvolutionMode.Same && s.getPoolingType() == PoolingType.MAX;
      checkWindow(name, same ? ConvolutionMode.Truncate : s.getConvolutionMode(), s.getDilation());
      checkChannelsFirst(name, s.getCnn2dDataFormat());
      if (s.getPoolingType() == PoolingType.AVG) {
        return new MaxPool(
            name,
            in,
            s.getKernelSize(),
            s.getStride(),
            s.getPadding(),
            s.isAvgPoolIncludePadInDivisor()
                ? dnnl_pooling_avg_include_padding
                : dnnl_pooling_avg_exclude_padding,
            false);
      }
      if (s.getPoolingType() != PoolingType.MAX) {
        throw new UnsupportedNetworkException(
            "layer " + name + ": pooling other than max or average");
      }
      return new MaxPool(
          name, in, s.getKernelSize(), s.getStride(), s.getPadding(), dnnl_pooling_max, same);
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
      final IActivation activation = a.getActivationFn();
      if (activation instanceof ActivationReLU relu && plainRelu(relu)) {
        return new Relu(name, in);
      }
      if (activation instanceof ActivationReLU6) {
        return Relu.six(name, in);
      }
      if (activation instanceof ActivationLReLU leaky
          && leaky.getAlpha() >= 0
          && leaky.getAlpha() < 1) {
        return Relu.leaky(name, in, leaky.getAlpha());
      }
      throw new UnsupportedNetworkException(
          "layer "
              + name
              + ": activation "
              + activation
              + " (the engine has ReLU, leaky ReLU, ReLU6)");
    }
    if (layerConf instanceof EmbeddingSequenceLayer e) {
      if (e.hasBias()
          || !(e.getActivationFn() instanceof ActivationIdentity)
          || e.getOutputFormat() != RNNFormat.NCW) {
        throw new UnsupportedNetworkException(
            "layer " + name + ": embedding other than without bias or activation, channels first");
      }
      return new Embedding(name, in, layer, e.getNIn(), e.getNOut());
    }
    if (layerConf instanceof LSTM l && l.getClass() == LSTM.class) {
      if (!(l.getActivationFn() instanceof ActivationTanH)
          || !(l.getGateActivationFn() instanceof ActivationSigmoid)
          || l.getRnnDataFormat() != RNNFormat.NCW) {
        throw new UnsupportedNetworkException(
            "layer "
                + name
                + ": LSTM other than with tanh, sigmoid gates and channels-first sequences");
      }
      return new Lstm(name, in, layer, l.getNIn(), l.getNOut());
    }
    if (layerConf instanceof org.deeplearning4j.nn.conf.layers.objdetect.Yolo2OutputLayer y) {
      return new Yolo(
          name,
          in,
          (org.deeplearning4j.nn.layers.objdetect.Yolo2OutputLayer) layer,
          y.getBoundingBoxes().size(0));
    }
    if (layerConf instanceof OutputLayer o && o.getClass() == OutputLayer.class) {
      if (!(o.getActivationFn() instanceof ActivationSoftmax)
          || !(o.getLossFn() instanceof LossMCXENT loss)
          || !(uniformWeight(loss) > 0)) {
        throw new UnsupportedNetworkException(
            "layer "
                + name
                + ": output other than softmax with cross-entropy weighted alike for every class");
      }
      return new Output(
          name,
          in,
          layer,
          o.getNOut(),
          o.hasBias(),
          format(preProcessor),
          loss.getSoftmaxClipEps(),
          uniformWeight(loss));
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

  /**
   * The graph's outputs are its output layers, each read by no other vertex, all over the same
   * classes (every output learns the image's class, as GoogLeNet's auxiliary classifiers do), the
   * last in topological order among them; or one YOLOv2 loss, the last.
   */
  private static void checkOutputs(List<Op> ops, List<String> outputs)
      throws UnsupportedNetworkException {
    final Set<String> outputLayers = new HashSet<>();
    long classes = -1;
    for (Op op : ops) {
      if (op instanceof Yolo) {
        outputLayers.add(op.name);
      }
      if (op instanceof Output output) {
        outputLayers.add(op.name);
        if (classes >= 0 && output.outputs != classes) {
          throw new UnsupportedNetworkException(
              "output layers over different numbers of classes ("
                  + classes
                  + ", "
                  + output.outputs
                  + ")");
        }
        classes = output.outputs;
      }
      for (String input : op.inputs) {
        if (outputLayers.contains(input)) {
          throw new UnsupportedNetworkException(
              "output layer " + input + " read by vertex " + op.name);
        }
      }
    }
    final Op last = ops.get(ops.size() - 1);
    if (!outputLayers.equals(new HashSet<>(outputs))
        || !(last instanceof Output || last instanceof Yolo && outputLayers.size() == 1)) {
      throw new UnsupportedNetworkException(
          "a graph whose outputs " + outputs + " are not its output layers " + outputLayers);
    }
  }

  /**
   * Adds the dropout of a layer that drops its input ({@link SampleDropout} on a dense or output
   * layer, whose flattened input is in channels-first order) before it.
   *
   * @return the layer's inputs: the dropout's output in place of its input, if it has one
   */
  private static List<String> dropped(
      List<Op> ops,
      String name,
      List<String> inputs,
      org.deeplearning4j.nn.conf.graph.GraphVertex conf,
      GraphVertex vertex)
      throws UnsupportedNetworkException {
    if (!(conf instanceof LayerVertex layerVertex)
        || !vertex.hasLayer()
        || vertex.getLayer().conf().getLayer().getIDropout() == null
        || inputs.size() != 1) {
      return inputs;
    }
    final org.deeplearning4j.nn.conf.layers.Layer layerConf = vertex.getLayer().conf().getLayer();
    if (!(layerConf.getIDropout() instanceof SampleDropout dropout)) {
      throw new UnsupportedNetworkException(
          "layer "
              + name
              + " with dropout "
              + layerConf.getIDropout().getClass().getSimpleName()
              + " (the engine computes SampleDropout, whose masks follow the samples)");
    }
    if (!(layerConf instanceof DenseLayer || layerConf instanceof OutputLayer)
        || format(layerVertex.getPreProcessor()) != CNN2DFormat.NCHW) {
      throw new UnsupportedNetworkException(
          "layer " + name + ": dropout other than on a dense layer's channels-first input");
    }
    final String dropName = name + "-dropout";
    ops.add(new Dropout(dropName, inputs.get(0), dropout));
    return List.of(dropName);
  }

  /**
   * @return the weight of every class in the loss (1 without weights), or 0 where they differ
   */
  private static double uniformWeight(LossMCXENT loss) {
    final INDArray weights = loss.getWeights();
    if (weights == null) {
      return 1;
    }
    final double first = weights.getDouble(0);
    return weights.neq(first).castTo(DataType.INT).sumNumber().intValue() == 0 ? first : 0;
  }

  private static CNN2DFormat format(InputPreProcessor preProcessor) {
    return preProcessor instanceof CnnToFeedForwardPreProcessor p
        ? p.getFormat()
        : CNN2DFormat.NCHW;
  }

  /**
   * Refuses what neither engine computes on any layer: a frozen layer, dropout (but {@link
   * SampleDropout} where {@code sampleDropout}), weight noise, gradient normalization, an input
   * preprocessor other than flattening.
   *
   * @return the layer's configuration
   */
  static org.deeplearning4j.nn.conf.layers.Layer plainLayer(
      String name, LayerVertex layerVertex, Layer layer, boolean sampleDropout)
      throws UnsupportedNetworkException {
    if (layer instanceof FrozenLayer || layer instanceof FrozenLayerWithBackprop) {
      // its conf is the wrapped layer's: without this check it would train like any other
      throw new UnsupportedNetworkException("frozen layer " + name + " (transfer learning)");
    }
    final org.deeplearning4j.nn.conf.layers.Layer layerConf = layer.conf().getLayer();
    if (layerConf.getIDropout() != null
        && !(sampleDropout && layerConf.getIDropout() instanceof SampleDropout)) {
      throw new UnsupportedNetworkException("layer " + name + " with dropout");
    }
    if (layerConf instanceof BaseLayer base
        && (base.getWeightNoise() != null
            || base.getGradientNormalization()
                != org.deeplearning4j.nn.conf.GradientNormalization.None)) {
      throw new UnsupportedNetworkException(
          "layer " + name + " with weight noise or gradient normalization");
    }
    final InputPreProcessor preProcessor = layerVertex.getPreProcessor();
    if (preProcessor != null && !(preProcessor instanceof CnnToFeedForwardPreProcessor)) {
      throw new UnsupportedNetworkException(
          "layer " + name + " with input preprocessor " + preProcessor.getClass().getSimpleName());
    }
    return layerConf;
  }

  /** Truncate or Strict mode (Same and Causal pad otherwise), and no dilation. */
  static void checkWindow(String name, ConvolutionMode mode, int[] dilation)
      throws UnsupportedNetworkException {
    checkMode(name, mode);
    if (dilation != null && (dilation[0] != 1 || dilation[1] != 1)) {
      throw new UnsupportedNetworkException("layer " + name + " with dilation");
    }
  }

  /** Truncate or Strict mode: Same and Causal pad the input otherwise. */
  static void checkMode(String name, ConvolutionMode mode) throws UnsupportedNetworkException {
    if (mode != ConvolutionMode.Truncate && mode != ConvolutionMode.Strict) {
      throw new UnsupportedNetworkException("layer " + name + " in convolution mode " + mode);
    }
  }

  /**
   * Sequences flow from an embedding of one of the network's inputs (token ids, which nothing else
   * reads) through LSTMs to the step that takes their last element; nothing else reads or writes
   * them.
   */
  private static void checkSequences(List<Op> ops, List<String> inputs)
      throws UnsupportedNetworkException {
    final Set<String> sequences = new HashSet<>();
    final Set<String> tokens = new HashSet<>();
    for (Op op : ops) {
      if (op instanceof Embedding) {
        if (!inputs.contains(op.inputs.get(0))) {
          throw new UnsupportedNetworkException(
              "embedding " + op.name + " of " + op.inputs.get(0) + ", not of a network input");
        }
        tokens.add(op.inputs.get(0));
      }
    }
    for (Op op : ops) {
      final boolean readsSequences = op instanceof Lstm || op instanceof LastStep;
      for (String input : op.inputs) {
        if (tokens.contains(input) && !(op instanceof Embedding)) {
          throw new UnsupportedNetworkException(
              "vertex " + op.name + " reads the token ids " + input + " that an embedding reads");
        }
        if (sequences.contains(input) != readsSequences) {
          throw new UnsupportedNetworkException(
              "vertex "
                  + op.name
                  + (readsSequences ? " reads " + input + ", which is not" : " reads " + input)
                  + " a sequence (the engine's sequences go from an embedding through LSTMs to"
                  + " their last step)");
        }
      }
      if (op instanceof Embedding || op instanceof Lstm) {
        sequences.add(op.name);
      }
    }
  }

  /** The engine's tensors are channels first, as the zoo's models and their data are. */
  static void checkChannelsFirst(String name, CNN2DFormat format)
      throws UnsupportedNetworkException {
    if (format != CNN2DFormat.NCHW) {
      throw new UnsupportedNetworkException("layer " + name + " in " + format + " layout");
    }
  }

  static FusedRelu relu(String name, IActivation activation) throws UnsupportedNetworkException {
    if (activation == null || activation instanceof ActivationIdentity) {
      return null;
    }
    if (activation instanceof ActivationReLU relu && plainRelu(relu)) {
      return FusedRelu.PLAIN;
    }
    if (activation instanceof ActivationLReLU leaky
        && leaky.getAlpha() >= 0
        && leaky.getAlpha() < 1) {
      return new FusedRelu((float) leaky.getAlpha());
    }
    throw new UnsupportedNetworkException(
        "layer " + name + " with activation " + activation.getClass().getSimpleName());
  }

  /** max(0, x): no cap, no threshold, no leak (which oneDNN's post-op would ignore). */
  static boolean plainRelu(ActivationReLU relu) {
    return relu.getMax() == null
        && (relu.getThreshold() == null || relu.getThreshold() == 0)
        && (relu.getNegativeSlope() == null || relu.getNegativeSlope() == 0);
  }

  /**
   * Forward and backward on one batch of a network of one input.
   *
   * @see #computeGradients(INDArray[], INDArray)
   */
  public double computeGradients(INDArray features, INDArray labels) {
    return computeGradients(new INDArray[] {features}, labels);
  }

  /**
   * Forward and backward on one batch: the gradient, summed over the batch, lands in the network's
   * gradient views, and BatchNorm's running-statistics updates in theirs.
   *
   * @param features the network's inputs in its order ({@link io.lockstep.models.ModelZoo#inputs}):
   *     images {@code [n, channels, height, width]}, token ids {@code [n, length]} for an embedding
   * @param labels one-hot {@code [n, classes]}, or a detector's {@code [n, 4 + classes, grid,
   *     grid]}
   * @return the mean loss over the batch (without regularization)
   */
  public double computeGradients(INDArray[] features, INDArray labels) {
    if (features.length != inputNames.size()) {
      throw new IllegalArgumentException(
          features.length + " input arrays; the network takes " + inputNames);
    }
    final int n = (int) features[0].size(0);
    final long[][] shapes = new long[features.length][];
    for (int i = 0; i < features.length; i++) {
      shapes[i] = checkInput(i, features[i], n);
    }
    checkLabels(labels, n);
    if (closed) {
      throw new IllegalStateException("the compiled network was closed");
    }
    final INDArray[] contiguous = new INDArray[features.length];
    for (int i = 0; i < features.length; i++) {
      contiguous[i] =
          features[i].ordering() == 'c' && !features[i].isView()
              ? features[i]
              : features[i].dup('c');
    }
    try {
      final Plan plan = plan(n, shapes);
      for (int i = 0; i < features.length; i++) {
        plan.bindInput(i, Dnnl.address(contiguous[i]));
      }
      plan.labels = labels.dup('c').data().asFloat();
      plan.loss = 0;
      for (Action action : plan.forward) {
        action.run();
      }
      for (Action action : plan.backward) {
        action.run();
      }
      plan.scope.await();
      return plan.loss;
    } finally {
      // oneDNN reads the features' native buffers: keep their owners alive until the step is done
      Reference.reachabilityFence(contiguous);
      Reference.reachabilityFence(features);
    }
  }

  /**
   * Refuses an input of another rank than its first reader takes (token ids {@code [n, length]} for
   * an embedding, images {@code [n, channels, height, width]} for any other layer), another batch
   * than the first input's, or, after the first batch, another shape than it had.
   *
   * @return the input's shape
   */
  private long[] checkInput(int index, INDArray input, int n) {
    final String name = inputNames.get(index);
    final boolean tokens = tokenInputs.contains(name);
    final String takes = tokens ? "[n, length] token ids" : "[n, channels, height, width]";
    if (input.rank() != (tokens ? 2 : 4) || input.size(0) != n) {
      throw new IllegalArgumentException(
          "input "
              + name
              + " of shape "
              + Arrays.toString(input.shape())
              + "; the network takes "
              + takes
              + (index > 0 ? " for the " + n + " samples of input " + inputNames.get(0) : ""));
    }
    final long[] shape = input.shape();
    if (inputShapes != null) {
      final long[] expected = inputShapes[index].clone();
      expected[0] = n;
      if (!Arrays.equals(shape, expected)) {
        throw new IllegalArgumentException(
            "input "
                + name
                + " of shape "
                + Arrays.toString(shape)
                + "; the network takes "
                + Arrays.toString(expected));
      }
    }
    return shape;
  }

  /**
   * Refuses labels that do not fit the graph's output: one-hot {@code [n, classes]} for a
   * classifier, {@code [n, 4 + classes, grid, grid]} for a detector (whose channels and grid the
   * YOLOv2 op checks at every step against its input's).
   */
  private void checkLabels(INDArray labels, int n) {
    final Op last = ops.get(ops.size() - 1);
    final boolean fits;
    final String expected;
    if (last instanceof Yolo) {
      fits = labels.rank() == 4 && labels.size(0) == n;
      expected = "[" + n + ", 4 + classes, grid, grid]";
    } else {
      final long classes = ((Dense) last).outputs;
      fits = labels.rank() == 2 && labels.size(0) == n && labels.size(1) == classes;
      expected = "[" + n + ", " + classes + "]";
    }
    if (!fits) {
      throw new IllegalArgumentException(
          "labels of shape "
              + Arrays.toString(labels.shape())
              + " for "
              + n
              + " images; the network predicts "
              + expected);
    }
  }

  /** The plan of a batch size, built on first use; the first plan fixes the inputs' shapes. */
  private Plan plan(int n, long[][] shapes) {
    Plan plan = plans.get(n);
    if (plan == null) {
      if (plans.size() == PLANS_KEPT) {
        final Integer oldest = plans.keySet().iterator().next();
        plans.remove(oldest).scope.close();
      }
      plan = new Plan(this, shapes);
      plans.put(n, plan);
      inputShapes = shapes;
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
}
