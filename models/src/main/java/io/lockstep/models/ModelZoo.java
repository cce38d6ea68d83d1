package io.lockstep.models;

import io.lockstep.conf.ConfigurationException;
import io.lockstep.conf.JobConfig;
import io.lockstep.conf.Keys;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeMap;
import org.deeplearning4j.nn.api.Layer;
import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.ComputationGraphConfiguration.GraphBuilder;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.WorkspaceMode;
import org.deeplearning4j.nn.conf.graph.ElementWiseVertex;
import org.deeplearning4j.nn.conf.inputs.InputType;
import org.deeplearning4j.nn.conf.layers.ActivationLayer;
import org.deeplearning4j.nn.conf.layers.BatchNormalization;
import org.deeplearning4j.nn.conf.layers.ConvolutionLayer;
import org.deeplearning4j.nn.conf.layers.DenseLayer;
import org.deeplearning4j.nn.conf.layers.GlobalPoolingLayer;
import org.deeplearning4j.nn.conf.layers.OutputLayer;
import org.deeplearning4j.nn.conf.layers.SubsamplingLayer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.nn.weights.WeightInit;
import org.nd4j.linalg.activations.Activation;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.AdaGrad;
import org.nd4j.linalg.learning.config.Adam;
import org.nd4j.linalg.learning.config.IUpdater;
import org.nd4j.linalg.learning.config.Nesterovs;
import org.nd4j.linalg.learning.config.RmsProp;
import org.nd4j.linalg.learning.config.Sgd;
import org.nd4j.linalg.lossfunctions.LossFunctions;
import org.nd4j.linalg.schedule.ISchedule;

/** The models a job can train, by name, built as Deeplearning4j configurations. */
public final class ModelZoo {
  /**
   * What a model takes and predicts.
   *
   * @param name the name jobs use
   * @param channels input channels
   * @param height input height
   * @param width input width
   * @param classes output classes
   */
  public record Spec(String name, int channels, int height, int width, int classes) {}

  private static final Map<String, Spec> SPECS = new TreeMap<>();
  private static final String INPUT = "input";

  /** PyTorch's RMSprop alpha; Deeplearning4j's default decay is 0.95. */
  private static final double PYTORCH_RMSPROP_ALPHA = 0.99;

  static {
    SPECS.put("lenet", new Spec("lenet", 1, 28, 28, 10));
    SPECS.put("lenet-cifar", new Spec("lenet-cifar", 3, 32, 32, 10));
    SPECS.put("resnet-mini", new Spec("resnet-mini", 1, 28, 28, 10));
    SPECS.put("resnet18-cifar", new Spec("resnet18-cifar", 3, 32, 32, 10));
  }

  private ModelZoo() {}

  /**
   * Every model, by name.
   *
   * @return the specs in name order
   */
  public static List<Spec> all() {
    return List.copyOf(SPECS.values());
  }

  /**
   * The spec of one model.
   *
   * @param name a model name
   * @return its spec
   * @throws ConfigurationException naming the known models when there is no such model
   */
  public static Spec spec(String name) {
    final Spec spec = SPECS.get(name);
    if (spec == null) {
      throw new ConfigurationException(
          Keys.MODEL_NAME.name() + "=" + name + " is not a model; use one of " + SPECS.keySet());
    }
    return spec;
  }

  /**
   * Builds the job's model with its optimizer, schedule, weight decay and seed.
   *
   * @param job the job
   * @param totalSteps the steps of the whole run, for schedules that span it
   * @return a configuration; every worker builds the same one
   */
  public static ComputationGraphConfiguration configuration(JobConfig job, long totalSteps) {
    final Spec spec = spec(job.modelName());
    final NeuralNetConfiguration.Builder base =
        new NeuralNetConfiguration.Builder()
            .seed(job.seed())
            .updater(updater(job, LearningRateSchedule.of(job, totalSteps)))
            .weightInit(WeightInit.ZERO)
            .trainingWorkspaceMode(WorkspaceMode.ENABLED)
            .inferenceWorkspaceMode(WorkspaceMode.ENABLED);
    if (job.weightDecay() > 0) {
      base.l2(job.weightDecay()).l2Bias(job.weightDecay());
    }
    return switch (spec.name()) {
      case "lenet" -> lenet(base, spec);
      case "lenet-cifar" -> lenetCifar(base, spec);
      case "resnet-mini" -> resnetMini(base, spec, job.batchNormSync());
      case "resnet18-cifar" -> resnet18Cifar(base, spec, job.batchNormSync());
      default -> throw new IllegalStateException("no builder for " + spec.name());
    };
  }

  /**
   * The per-parameter views of a layer's gradient, keyed as Deeplearning4j keys the parameters
   * ({@code W}, {@code b}, {@code gamma}, {@code mean}, ...); writing a view writes the network's
   * flat gradient.
   *
   * @param layer a layer of a network whose gradient view is initialized
   * @return one view per parameter
   */
  public static Map<String, INDArray> gradientViews(Layer layer) {
    return layer
        .conf()
        .getLayer()
        .initializer()
        .getGradientsFromFlattened(layer.conf(), layer.getGradientsViewArray());
  }

  /**
   * Draws every weight and bias uniform in +-1/sqrt(fan-in), PyTorch's default for convolution and
   * linear layers, from a generator seeded by {@code seed} alone. Deeplearning4j's own
   * initialization draws from ND4J's native generator, which M2.1 does not reproduce from a seed
   * (two networks built from one configuration differ), so a job's replicas and reruns could not
   * start from the same weights without this.
   *
   * @param network an initialized network
   * @param seed the job's seed
   */
  public static void initialize(ComputationGraph network, long seed) {
    final SplittableRandom random = new SplittableRandom(seed);
    for (Layer layer : network.getLayers()) {
      final Map<String, INDArray> params = layer.paramTable();
      final INDArray weights = params.get("W");
      if (weights == null) {
        continue;
      }
      final long[] shape = weights.shape();
      // convolution weights are [out, in, kh, kw]; dense weights are [in, out]
      final long fanIn = shape.length == 4 ? shape[1] * shape[2] * shape[3] : shape[0];
      final double bound = 1.0 / Math.sqrt(fanIn);
      for (String name : new String[] {"W", "b"}) {
        final INDArray param = params.get(name);
        if (param != null) {
          final float[] values = new float[(int) param.length()];
          for (int v = 0; v < values.length; v++) {
            values[v] = (float) ((random.nextDouble() * 2 - 1) * bound);
          }
          param.assign(Nd4j.create(values, param.shape(), param.ordering()));
        }
      }
    }
  }

  /**
   * The seeds' LeNet: conv 5x5x20, max-pool 2, conv 5x5x50, max-pool 2, dense 500 ReLU, softmax.
   * Weights are drawn by {@link #initialize}.
   */
  private static ComputationGraphConfiguration lenet(
      NeuralNetConfiguration.Builder base, Spec spec) {
    final GraphBuilder graph = base.graphBuilder().addInputs(INPUT);
    String last = INPUT;
    last = add(graph, "conv1", conv(5, 1, 0, 20, true, Activation.RELU), last);
    last = add(graph, "pool1", maxPool(), last);
    last = add(graph, "conv2", conv(5, 1, 0, 50, true, Activation.RELU), last);
    last = add(graph, "pool2", maxPool(), last);
    last = add(graph, "fc1", new DenseLayer.Builder().nOut(500).activation(Activation.RELU), last);
    last = add(graph, "output", softmax(spec), last);
    return finish(graph, spec, last);
  }

  /**
   * The seeds' LeNet for CIFAR-10 (3x32x32), as PyTorch's CIFAR tutorial writes it: conv 3->6 5x5,
   * max-pool 2, conv 6->16 5x5, max-pool 2, fully connected 400->120->84->10, ReLU after every
   * layer but the last: 62,006 trainable parameters.
   */
  private static ComputationGraphConfiguration lenetCifar(
      NeuralNetConfiguration.Builder base, Spec spec) {
    final GraphBuilder graph = base.graphBuilder().addInputs(INPUT);
    String last = INPUT;
    last = add(graph, "conv1", conv(5, 1, 0, 6, true, Activation.RELU), last);
    last = add(graph, "pool1", maxPool(), last);
    last = add(graph, "conv2", conv(5, 1, 0, 16, true, Activation.RELU), last);
    last = add(graph, "pool2", maxPool(), last);
    last = add(graph, "fc1", new DenseLayer.Builder().nOut(120).activation(Activation.RELU), last);
    last = add(graph, "fc2", new DenseLayer.Builder().nOut(84).activation(Activation.RELU), last);
    last = add(graph, "output", softmax(spec), last);
    return finish(graph, spec, last);
  }

  /**
   * A small residual network with BatchNorm for 28x28 images: a 3x3 stem of 16 channels, two basic
   * blocks (16 channels at 14x14, 32 at 7x7), each entered at stride 2 through a 1x1 projection
   * shortcut, global average pooling and a softmax layer. Convolutions before BatchNorm have no
   * bias, as in torchvision's ResNets. With {@code sync}, BatchNorm normalizes with the global
   * batch's statistics.
   */
  private static ComputationGraphConfiguration resnetMini(
      NeuralNetConfiguration.Builder base, Spec spec, boolean sync) {
    final GraphBuilder graph = base.graphBuilder().addInputs(INPUT);
    String last = stem(graph, 16, sync);
    last = basicBlock(graph, "block1", last, 16, 2, true, sync);
    last = basicBlock(graph, "block2", last, 32, 2, true, sync);
    return averageAndClassify(graph, spec, last);
  }

  /**
   * ResNet-18 for 32x32 images as the CIFAR literature (and the PyTorch reference in {@code
   * bench/pytorch/cifar_resnet_bench.py}) defines it: torchvision's ResNet-18 with a 3x3 stride-1
   * stem of 64 channels and no max-pool, four stages of two basic blocks (64, 128, 256 and 512
   * channels, the last three entered at stride 2 through a 1x1 projection), global average pooling
   * and a 10-way linear layer: 11,173,962 trainable parameters.
   */
  private static ComputationGraphConfiguration resnet18Cifar(
      NeuralNetConfiguration.Builder base, Spec spec, boolean sync) {
    final GraphBuilder graph = base.graphBuilder().addInputs(INPUT);
    String last = stem(graph, 64, sync);
    int inChannels = 64;
    final int[] stageChannels = {64, 128, 256, 512};
    for (int stage = 0; stage < stageChannels.length; stage++) {
      final int channels = stageChannels[stage];
      final int stride = stage == 0 ? 1 : 2;
      final String name = "layer" + (stage + 1);
      last =
          basicBlock(
              graph,
              name + "_0",
              last,
              channels,
              stride,
              stride != 1 || inChannels != channels,
              sync);
      last = basicBlock(graph, name + "_1", last, channels, 1, false, sync);
      inChannels = channels;
    }
    return averageAndClassify(graph, spec, last);
  }

  /** A 3x3 stride-1 convolution without bias, BatchNorm and ReLU on the input. */
  private static String stem(GraphBuilder graph, int channels, boolean sync) {
    String last = add(graph, "stem", conv(3, 1, 1, channels, false, Activation.IDENTITY), INPUT);
    last = add(graph, "stem_bn", batchNorm(sync), last);
    return add(graph, "stem_relu", new ActivationLayer.Builder().activation(Activation.RELU), last);
  }

  private static ComputationGraphConfiguration averageAndClassify(
      GraphBuilder graph, Spec spec, String input) {
    String last = input;
    last =
        add(
            graph,
            "pool",
            new GlobalPoolingLayer.Builder(org.deeplearning4j.nn.conf.layers.PoolingType.AVG),
            last);
    last = add(graph, "output", softmax(spec), last);
    return finish(graph, spec, last);
  }

  /**
   * conv-BN-ReLU-conv-BN, plus the input (through a 1x1 projection and BN when {@code project}),
   * then ReLU.
   */
  private static String basicBlock(
      GraphBuilder graph,
      String name,
      String input,
      int channels,
      int stride,
      boolean project,
      boolean sync) {
    String last = input;
    last =
        add(graph, name + "_conv1", conv(3, stride, 1, channels, false, Activation.IDENTITY), last);
    last = add(graph, name + "_bn1", batchNorm(sync), last);
    last =
        add(
            graph,
            name + "_relu1",
            new ActivationLayer.Builder().activation(Activation.RELU),
            last);
    last = add(graph, name + "_conv2", conv(3, 1, 1, channels, false, Activation.IDENTITY), last);
    last = add(graph, name + "_bn2", batchNorm(sync), last);
    String shortcut = input;
    if (project) {
      shortcut =
          add(
              graph,
              name + "_proj",
              conv(1, stride, 0, channels, false, Activation.IDENTITY),
              input);
      shortcut = add(graph, name + "_proj_bn", batchNorm(sync), shortcut);
    }
    graph.addVertex(name + "_add", new ElementWiseVertex(ElementWiseVertex.Op.Add), last, shortcut);
    return add(
        graph,
        name + "_relu2",
        new ActivationLayer.Builder().activation(Activation.RELU),
        name + "_add");
  }

  private static ConvolutionLayer.Builder conv(
      int kernel, int stride, int padding, int channels, boolean bias, Activation activation) {
    return new ConvolutionLayer.Builder(kernel, kernel)
        .stride(stride, stride)
        .padding(padding, padding)
        .nOut(channels)
        .hasBias(bias)
        .activation(activation);
  }

  private static SubsamplingLayer.Builder maxPool() {
    return new SubsamplingLayer.Builder(SubsamplingLayer.PoolingType.MAX)
        .kernelSize(2, 2)
        .stride(2, 2);
  }

  private static OutputLayer.Builder softmax(Spec spec) {
    return new OutputLayer.Builder(LossFunctions.LossFunction.MCXENT)
        .nOut(spec.classes())
        .activation(Activation.SOFTMAX);
  }

  private static BatchNormalization batchNorm(boolean sync) {
    return sync ? new SyncBatchNormalization() : new BatchNormalization.Builder().build();
  }

  private static String add(
      GraphBuilder graph,
      String name,
      org.deeplearning4j.nn.conf.layers.Layer.Builder<?> layer,
      String input) {
    return add(graph, name, layer.build(), input);
  }

  private static String add(
      GraphBuilder graph,
      String name,
      org.deeplearning4j.nn.conf.layers.Layer layer,
      String input) {
    graph.addLayer(name, layer, input);
    return name;
  }

  private static ComputationGraphConfiguration finish(
      GraphBuilder graph, Spec spec, String output) {
    return graph
        .setOutputs(output)
        .setInputTypes(InputType.convolutional(spec.height(), spec.width(), spec.channels()))
        .build();
  }

  static IUpdater updater(JobConfig job, ISchedule schedule) {
    final Momentum momentum = new Momentum(job.baseLearningRate(), job.momentum());
    momentum.setLearningRateSchedule(schedule);
    return switch (job.optimizer()) {
      case SGD -> new Sgd(schedule);
      case MOMENTUM -> momentum;
      case NESTEROV -> new Nesterovs(schedule, job.momentum());
      case ADAM -> new Adam(schedule);
      case ADAGRAD -> new ScheduledAdaGrad(schedule, AdaGrad.DEFAULT_ADAGRAD_EPSILON);
      case RMSPROP -> {
        final RmsProp rmsProp = new RmsProp(schedule);
        rmsProp.setRmsDecay(PYTORCH_RMSPROP_ALPHA);
        yield rmsProp;
      }
    };
  }
}
