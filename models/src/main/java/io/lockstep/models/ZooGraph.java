package io.lockstep.models;

import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.ComputationGraphConfiguration.GraphBuilder;
import org.deeplearning4j.nn.conf.ConvolutionMode;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.graph.ElementWiseVertex;
import org.deeplearning4j.nn.conf.graph.LayerVertex;
import org.deeplearning4j.nn.conf.graph.MergeVertex;
import org.deeplearning4j.nn.conf.graph.PreprocessorVertex;
import org.deeplearning4j.nn.conf.graph.rnn.LastTimeStepVertex;
import org.deeplearning4j.nn.conf.inputs.InputType;
import org.deeplearning4j.nn.conf.layers.ActivationLayer;
import org.deeplearning4j.nn.conf.layers.BatchNormalization;
import org.deeplearning4j.nn.conf.layers.ConvolutionLayer;
import org.deeplearning4j.nn.conf.layers.DenseLayer;
import org.deeplearning4j.nn.conf.layers.DepthwiseConvolution2D;
import org.deeplearning4j.nn.conf.layers.EmbeddingSequenceLayer;
import org.deeplearning4j.nn.conf.layers.GlobalPoolingLayer;
import org.deeplearning4j.nn.conf.layers.LSTM;
import org.deeplearning4j.nn.conf.layers.Layer;
import org.deeplearning4j.nn.conf.layers.OutputLayer;
import org.deeplearning4j.nn.conf.layers.PoolingType;
import org.deeplearning4j.nn.conf.layers.SubsamplingLayer;
import org.deeplearning4j.nn.conf.layers.objdetect.Yolo2OutputLayer;
import org.deeplearning4j.nn.conf.preprocessor.FeedForwardToCnnPreProcessor;
import org.nd4j.linalg.activations.Activation;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.lossfunctions.impl.LossMCXENT;

/**
 * A zoo network under construction, in PyTorch's terms: every method adds one named vertex fed by
 * the named input(s) and returns the new vertex's name, so a builder reads like a model's {@code
 * forward}. Convolutions and pooling are channels first; windows are floored (PyTorch's default)
 * unless a method says otherwise.
 */
final class ZooGraph {
  /** The network's input vertex: the image. */
  static final String INPUT = "input";

  /** A grounding network's second input vertex: the phrase's token ids. */
  static final String TOKENS = "tokens";

  private final GraphBuilder graph;
  private final boolean syncBatchNorm;
  private final ModelZoo.Spec spec;
  private final java.util.Map<String, Integer> embeddings = new java.util.HashMap<>();

  ZooGraph(NeuralNetConfiguration.Builder base, ModelZoo.Spec spec, boolean syncBatchNorm) {
    this.graph =
        spec.task() == ModelZoo.Task.GROUNDING
            ? base.graphBuilder().addInputs(INPUT, TOKENS)
            : base.graphBuilder().addInputs(INPUT);
    this.spec = spec;
    this.syncBatchNorm = syncBatchNorm;
  }

  /** A {@code kernel x kernel} convolution with no activation (PyTorch's {@code Conv2d}). */
  String conv(String name, String in, int kernel, int stride, int padding, int out, boolean bias) {
    return conv(name, in, kernel, stride, padding, out, bias, Activation.IDENTITY);
  }

  /** A {@code kernel x kernel} convolution followed by {@code activation}. */
  String conv(
      String name,
      String in,
      int kernel,
      int stride,
      int padding,
      int out,
      boolean bias,
      Activation activation) {
    return layer(
        name,
        new ConvolutionLayer.Builder(kernel, kernel)
            .stride(stride, stride)
            .padding(padding, padding)
            .nOut(out)
            .hasBias(bias)
            .activation(activation)
            .build(),
        in);
  }

  /**
   * A 3x3 convolution with bias whose taps lie {@code dilation} apart (PyTorch's {@code Conv2d(in,
   * out, 3, padding=dilation, dilation=dilation)}), followed by {@code activation}: the output
   * keeps the input's size and each output sees a {@code 2 * dilation + 1} square.
   */
  String dilatedConv(String name, String in, int dilation, int out, Activation activation) {
    return layer(
        name,
        new ConvolutionLayer.Builder(3, 3)
            .dilation(dilation, dilation)
            .padding(dilation, dilation)
            .nOut(out)
            .activation(activation)
            .build(),
        in);
  }

  /**
   * A 3x3 depthwise convolution without bias, padding 1, one filter per channel (PyTorch's {@code
   * Conv2d(c, c, 3, stride, 1, groups=c, bias=False)}).
   */
  String depthwise(String name, String in, int channels, int stride) {
    return layer(
        name,
        new DepthwiseConvolution2D.Builder(3, 3)
            .stride(stride, stride)
            .padding(1, 1)
            .depthMultiplier(1)
            .nOut(channels)
            .hasBias(false)
            .activation(Activation.IDENTITY)
            .build(),
        in);
  }

  /** BatchNorm with PyTorch's defaults (eps 1e-5, momentum 0.1); global when the job syncs it. */
  String batchNorm(String name, String in) {
    return batchNorm(name, in, 1e-5);
  }

  /** BatchNorm with {@code eps}. */
  String batchNorm(String name, String in, double eps) {
    final BatchNormalization layer =
        syncBatchNorm ? new SyncBatchNormalization() : new BatchNormalization.Builder().build();
    layer.setEps(eps);
    return layer(name, layer, in);
  }

  /** {@code activation} on its own, e.g. ReLU after BatchNorm. */
  String activation(String name, String in, Activation activation) {
    return layer(name, new ActivationLayer.Builder().activation(activation).build(), in);
  }

  /** ReLU. */
  String relu(String name, String in) {
    return activation(name, in, Activation.RELU);
  }

  /** Max pooling, floored windows, padding ignored by the maximum. */
  String maxPool(String name, String in, int kernel, int stride, int padding) {
    return layer(name, pooling(PoolingType.MAX, kernel, stride, padding).build(), in);
  }

  /**
   * Max pooling in Deeplearning4j's Same mode: {@code ceil(size / stride)} outputs, the input
   * padded as needed (the odd pixel at the bottom and right), the padding ignored by the maximum.
   * That is PyTorch's {@code ceil_mode=True} wherever {@code ceil((size - kernel) / stride) + 1}
   * comes to the same count (GoogLeNet's 3x3/2 pools at 112, 56 and 28, its 2x2/2 pool at 14), and
   * a 3x3/1 pool with {@code padding=1} (its inception branches); {@code ModelZooTest} checks the
   * sizes.
   */
  String maxPoolCeil(String name, String in, int kernel, int stride) {
    return layer(
        name,
        pooling(PoolingType.MAX, kernel, stride, 0).convolutionMode(ConvolutionMode.Same).build(),
        in);
  }

  /** Average pooling, floored windows, no padding. */
  String averagePool(String name, String in, int kernel, int stride) {
    return layer(name, pooling(PoolingType.AVG, kernel, stride, 0).build(), in);
  }

  /** The mean of every channel: {@code AdaptiveAvgPool2d(1)} and {@code flatten}. */
  String globalAverage(String name, String in) {
    return layer(name, new GlobalPoolingLayer.Builder(PoolingType.AVG).build(), in);
  }

  /** The element-wise sum of two inputs (a residual connection). */
  String add(String name, String first, String second) {
    graph.addVertex(name, new ElementWiseVertex(ElementWiseVertex.Op.Add), first, second);
    return name;
  }

  /** The inputs concatenated along channels ({@code torch.cat(xs, 1)}). */
  String concat(String name, String... inputs) {
    graph.addVertex(name, new MergeVertex(), inputs);
    return name;
  }

  /**
   * A fully connected layer (flattening a convolutional input in channels-first order, as {@code
   * torch.flatten}), with {@code dropBefore} the probability that dropout zeroes each input in
   * training (0: none; {@link SampleDropout}).
   */
  String dense(String name, String in, int out, Activation activation, double dropBefore) {
    final DenseLayer.Builder layer = new DenseLayer.Builder().nOut(out).activation(activation);
    if (dropBefore > 0) {
      layer.dropOut(new SampleDropout(dropBefore, name));
    }
    return layer(name, layer.build(), in);
  }

  /**
   * The classifier: a linear layer to the model's classes with softmax and cross-entropy, weighted
   * by {@code lossWeight} in the total loss (1 for the main output, GoogLeNet's 0.3 for its
   * auxiliary classifiers).
   */
  String output(String name, String in, double dropBefore, double lossWeight) {
    final LossMCXENT loss =
        lossWeight == 1
            ? new LossMCXENT()
            : new LossMCXENT(Nd4j.valueArrayOf(spec.classes(), lossWeight));
    final OutputLayer.Builder layer =
        new OutputLayer.Builder(loss).nOut(spec.classes()).activation(Activation.SOFTMAX);
    if (dropBefore > 0) {
      layer.dropOut(new SampleDropout(dropBefore, name));
    }
    return layer(name, layer.build(), in);
  }

  /**
   * A YOLOv2 head: a 1x1 convolution to {@code anchors x (5 + classes)} channels and
   * Deeplearning4j's {@code Yolo2OutputLayer} with the anchors (in grid cells) and cross-entropy
   * for the class (the YOLOv2 paper's squared error trains it more slowly).
   */
  String yolo(String name, String in, double[][] anchors) {
    final String head =
        conv(name + "_head", in, 1, 1, 0, anchors.length * (5 + spec.classes()), true);
    return layer(
        name,
        new Yolo2OutputLayer.Builder()
            .boundingBoxPriors(Nd4j.create(anchors))
            .lossClassPredictions(new LossMCXENT())
            .build(),
        head);
  }

  /** A flat row read as a {@code channels x height x width} image, channels first. */
  String image(String name, String in, int channels, int height, int width) {
    graph.addVertex(
        name,
        new PreprocessorVertex(new FeedForwardToCnnPreProcessor(height, width, channels)),
        in);
    return name;
  }

  /** Token ids {@code [n, length]} to learned vectors {@code [n, size, length]}. */
  String embedding(String name, String in, int vocabulary, int size, int length) {
    embeddings.put(name, vocabulary);
    return layer(
        name,
        new EmbeddingSequenceLayer.Builder()
            .nIn(vocabulary)
            .nOut(size)
            .inputLength(length)
            .hasBias(false)
            .build(),
        in);
  }

  /** An LSTM over a sequence, its last step's hidden state {@code [n, size]} out. */
  String lstmLast(String name, String in, int size) {
    layer(name + "_seq", new LSTM.Builder().nOut(size).activation(Activation.TANH).build(), in);
    graph.addVertex(name, new LastTimeStepVertex(TOKENS), name + "_seq");
    return name;
  }

  /** The main classifier, no dropout. */
  String output(String name, String in) {
    return output(name, in, 0, 1);
  }

  /**
   * The finished configuration.
   *
   * @param outputs the output layers, the model's prediction first
   * @return the configuration for the spec's input shape
   */
  ComputationGraphConfiguration build(String... outputs) {
    final ComputationGraphConfiguration configuration =
        graph.setOutputs(outputs).setInputTypes(inputTypes(spec)).build();
    // Deeplearning4j sets every layer's input width from the input types when it builds, and an
    // embedding's is then its sequence length, not its vocabulary: put the vocabulary back.
    embeddings.forEach(
        (name, vocabulary) ->
            ((EmbeddingSequenceLayer)
                    ((LayerVertex) configuration.getVertices().get(name)).getLayerConf().getLayer())
                .setNIn(vocabulary));
    return configuration;
  }

  /** What a model's inputs take: an image, and for grounding the phrase's token ids. */
  private static InputType[] inputTypes(ModelZoo.Spec spec) {
    final InputType image = InputType.convolutional(spec.height(), spec.width(), spec.channels());
    return spec.task() == ModelZoo.Task.GROUNDING
        ? new InputType[] {image, InputType.feedForward(ModelZoo.PHRASE_TOKENS)}
        : new InputType[] {image};
  }

  private String layer(String name, Layer layer, String in) {
    graph.addLayer(name, layer, in);
    return name;
  }

  private static SubsamplingLayer.Builder pooling(
      PoolingType type, int kernel, int stride, int padding) {
    return new SubsamplingLayer.Builder(type)
        .kernelSize(kernel, kernel)
        .stride(stride, stride)
        .padding(padding, padding);
  }
}
