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
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.WorkspaceMode;
import org.deeplearning4j.nn.conf.graph.GraphVertex;
import org.deeplearning4j.nn.conf.graph.LayerVertex;
import org.deeplearning4j.nn.conf.layers.BatchNormalization;
import org.deeplearning4j.nn.conf.layers.DepthwiseConvolution2D;
import org.deeplearning4j.nn.conf.layers.misc.FrozenLayer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.nn.weights.WeightInit;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;
import org.nd4j.linalg.learning.config.AdaGrad;
import org.nd4j.linalg.learning.config.Adam;
import org.nd4j.linalg.learning.config.IUpdater;
import org.nd4j.linalg.learning.config.Nesterovs;
import org.nd4j.linalg.learning.config.RmsProp;
import org.nd4j.linalg.learning.config.Sgd;
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
   * @param task what the model predicts, and so how its labels are made and it is scored
   */
  public record Spec(String name, int channels, int height, int width, int classes, Task task) {
    /**
     * A classifier's spec.
     *
     * @param name the name jobs use
     * @param channels input channels
     * @param height input height
     * @param width input width
     * @param classes output classes
     */
    public Spec(String name, int channels, int height, int width, int classes) {
      this(name, channels, height, width, classes, Task.CLASSIFICATION);
    }

    /**
     * The side of a detector's output grid: one cell per {@link #DETECTION_STRIDE} pixels.
     *
     * @return cells per row and column
     */
    public int grid() {
      return height / DETECTION_STRIDE;
    }
  }

  /** What a model predicts. */
  public enum Task {
    /** One class per image, one-hot labels, scored by accuracy. */
    CLASSIFICATION,
    /**
     * Boxes and their classes on a grid (YOLOv2's output), labels {@code [n, 4 + classes, grid,
     * grid]}, scored by mAP at IoU 0.5.
     */
    DETECTION,
    /**
     * The box a phrase names: two inputs, the image and {@link #PHRASE_TOKENS} token ids, which
     * batches carry as one row each ({@link #inputs}); a one-stage grounder is a detector of the
     * named shape alone (YOLOv2's output and labels, the most confident box its answer), scored by
     * mean IoU.
     */
    GROUNDING
  }

  /** Token ids at the end of a grounding model's input row. */
  public static final int PHRASE_TOKENS = 6;

  /** Words a grounding model's embedding knows, padding included. */
  public static final int VOCABULARY = 12;

  /** Pixels per output cell of every detector in the zoo. */
  public static final int DETECTION_STRIDE = 8;

  /** Builds a model's layers into a graph. */
  @FunctionalInterface
  private interface Architecture {
    ComputationGraphConfiguration build(ZooGraph graph);
  }

  private record Model(Spec spec, Architecture architecture) {}

  private static final Map<String, Model> MODELS = new TreeMap<>();

  /** PyTorch's RMSprop alpha; Deeplearning4j's default decay is 0.95. */
  private static final double PYTORCH_RMSPROP_ALPHA = 0.99;

  static {
    small("lenet", 1, 28, SeedModels::lenet);
    small("lenet-cifar", 3, 32, SeedModels::lenetCifar);
    small("feedforward", 3, 32, SeedModels::feedForward);
    small("simple-cnn", 3, 32, SeedModels::simpleCnn);
    small("resnet-mini", 1, 28, ResNets::mini);
    small("resnet18-cifar", 3, 32, ResNets::resnet18Cifar);
    imageNet("alexnet", ImageNetModels::alexnet);
    imageNet("vgg16", g -> ImageNetModels.vgg(g, new int[] {2, 2, 3, 3, 3}));
    imageNet("vgg19", g -> ImageNetModels.vgg(g, new int[] {2, 2, 4, 4, 4}));
    imageNet("resnet18", g -> ResNets.basic(g, new int[] {2, 2, 2, 2}));
    imageNet("resnet34", g -> ResNets.basic(g, new int[] {3, 4, 6, 3}));
    imageNet("resnet50", ResNets::resnet50);
    imageNet("densenet121", ImageNetModels::densenet121);
    imageNet("googlenet", ImageNetModels::googlenet);
    imageNet("mobilenet_v1", ImageNetModels::mobilenetV1);
    imageNet("mobilenet_v2", ImageNetModels::mobilenetV2);
    MODELS.put(
        "shapes-yolo",
        new Model(
            new Spec("shapes-yolo", 3, 64, 64, 3, Task.DETECTION), DetectionModels::shapesYolo));
    MODELS.put(
        "shapes-grounding",
        new Model(
            new Spec("shapes-grounding", 3, 64, 64, 3, Task.GROUNDING),
            DetectionModels::shapesGrounding));
  }

  /** A model for square images of 10 classes. */
  private static void small(String name, int channels, int size, Architecture architecture) {
    MODELS.put(name, new Model(new Spec(name, channels, size, size, 10), architecture));
  }

  /** A model for 3x224x224 images of ImageNet's 1000 classes. */
  private static void imageNet(String name, Architecture architecture) {
    MODELS.put(name, new Model(new Spec(name, 3, 224, 224, 1000), architecture));
  }

  private ModelZoo() {}

  /**
   * Every model, by name.
   *
   * @return the specs in name order
   */
  public static List<Spec> all() {
    return MODELS.values().stream().map(Model::spec).toList();
  }

  /**
   * The spec of one model.
   *
   * @param name a model name
   * @return its spec
   * @throws ConfigurationException naming the known models when there is no such model
   */
  public static Spec spec(String name) {
    final Model model = MODELS.get(name);
    if (model == null) {
      throw new ConfigurationException(
          Keys.MODEL_NAME.name() + "=" + name + " is not a model; use one of " + MODELS.keySet());
    }
    return model.spec();
  }

  /**
   * The spec of the job's model, its head as wide as {@code lockstep.model.classes} says.
   *
   * @param job the job
   * @return its model's spec
   * @throws ConfigurationException naming the known models when there is no such model
   */
  public static Spec spec(JobConfig job) {
    final Spec spec = spec(job.get(Keys.MODEL_NAME));
    return job.get(Keys.MODEL_CLASSES) == 0
        ? spec
        : new Spec(
            spec.name(),
            spec.channels(),
            spec.height(),
            spec.width(),
            job.get(Keys.MODEL_CLASSES),
            spec.task());
  }

  /**
   * Builds the job's model with its optimizer, schedule, weight decay and seed, its head as wide as
   * {@code lockstep.model.classes} says and its first {@code lockstep.model.freeze-layers} layers
   * frozen.
   *
   * @param job the job
   * @param totalSteps the steps of the whole run, for schedules that span it
   * @return a configuration; every worker builds the same one
   * @throws ConfigurationException when the model has fewer layers below its head than to freeze
   */
  public static ComputationGraphConfiguration configuration(JobConfig job, long totalSteps) {
    final Spec spec = spec(job);
    final NeuralNetConfiguration.Builder base =
        new NeuralNetConfiguration.Builder()
            .seed(job.get(Keys.SEED))
            .updater(updater(job, LearningRateSchedule.of(job, totalSteps)))
            .weightInit(WeightInit.ZERO)
            .trainingWorkspaceMode(WorkspaceMode.ENABLED)
            .inferenceWorkspaceMode(WorkspaceMode.ENABLED);
    if (job.get(Keys.WEIGHT_DECAY) > 0) {
      base.l2(job.get(Keys.WEIGHT_DECAY)).l2Bias(job.get(Keys.WEIGHT_DECAY));
    }
    final ComputationGraphConfiguration configuration =
        MODELS
            .get(spec.name())
            .architecture()
            .build(new ZooGraph(base, spec, job.get(Keys.BATCHNORM_SYNC)));
    return job.get(Keys.MODEL_FREEZE_LAYERS) == 0
        ? configuration
        : Transfer.freeze(configuration, job.get(Keys.MODEL_FREEZE_LAYERS), spec.name());
  }

  /**
   * A batch as the network's inputs. Batches carry one array: images {@code [n, c, h, w]}, or for a
   * network with a second input (grounding) rows of the image's pixels, channels first, followed by
   * the phrase's {@link #PHRASE_TOKENS} token ids, which this splits into {@code [n, c, h, w]} and
   * {@code [n, tokens]}.
   *
   * @param network the network
   * @param features the batch
   * @return one array per network input
   */
  public static INDArray[] inputs(ComputationGraph network, INDArray features) {
    if (network.getNumInputArrays() == 1) {
      return new INDArray[] {features};
    }
    final long n = features.size(0);
    final long pixels = features.size(1) - PHRASE_TOKENS;
    // the zoo's grounding models take square RGB images
    final long side = Math.round(Math.sqrt(pixels / 3.0));
    if (3 * side * side != pixels) {
      throw new IllegalArgumentException(
          "a row of " + features.size(1) + " values is not a square RGB image and the phrase");
    }
    return new INDArray[] {
      features
          .get(NDArrayIndex.all(), NDArrayIndex.interval(0, pixels))
          .dup('c')
          .reshape('c', n, 3, side, side),
      features
          .get(NDArrayIndex.all(), NDArrayIndex.interval(pixels, pixels + PHRASE_TOKENS))
          .dup('c')
    };
  }

  /**
   * The parameters an optimizer trains, counted from the configuration without allocating them:
   * every layer's, less frozen layers' and BatchNorm's running mean and variance (PyTorch's
   * buffers).
   *
   * @param configuration a built configuration
   * @return the trainable parameter count
   */
  public static long trainableParameters(ComputationGraphConfiguration configuration) {
    long count = 0;
    for (GraphVertex vertex : configuration.getVertices().values()) {
      if (vertex instanceof LayerVertex layerVertex
          && !(layerVertex.getLayerConf().getLayer() instanceof FrozenLayer)) {
        final org.deeplearning4j.nn.conf.layers.Layer layer = layerVertex.getLayerConf().getLayer();
        count += layer.initializer().numParams(layer);
        if (layer instanceof BatchNormalization norm) {
          count -= 2 * norm.getNOut();
        }
      }
    }
    return count;
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
      // convolution weights are [out, in, kh, kw], depthwise ones [kh, kw, channels, 1] (each
      // filter sees one channel), dense ones [in, out]
      final long fanIn;
      if (layer.conf().getLayer() instanceof DepthwiseConvolution2D) {
        fanIn = shape[0] * shape[1];
      } else {
        fanIn = shape.length == 4 ? shape[1] * shape[2] * shape[3] : shape[0];
      }
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

  static IUpdater updater(JobConfig job, ISchedule schedule) {
    final Momentum momentum = new Momentum(job.baseLearningRate(), job.get(Keys.MOMENTUM));
    momentum.setLearningRateSchedule(schedule);
    return switch (job.get(Keys.OPTIMIZER)) {
      case SGD -> new Sgd(schedule);
      case MOMENTUM -> momentum;
      case NESTEROV -> new Nesterovs(schedule, job.get(Keys.MOMENTUM));
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
