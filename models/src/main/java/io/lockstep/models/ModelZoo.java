package io.lockstep.models;

import io.lockstep.conf.ConfigurationException;
import io.lockstep.conf.JobConfig;
import io.lockstep.conf.Keys;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeMap;
import org.deeplearning4j.nn.conf.MultiLayerConfiguration;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.WorkspaceMode;
import org.deeplearning4j.nn.conf.inputs.InputType;
import org.deeplearning4j.nn.conf.layers.ConvolutionLayer;
import org.deeplearning4j.nn.conf.layers.DenseLayer;
import org.deeplearning4j.nn.conf.layers.OutputLayer;
import org.deeplearning4j.nn.conf.layers.SubsamplingLayer;
import org.deeplearning4j.nn.multilayer.MultiLayerNetwork;
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

  static {
    SPECS.put("lenet", new Spec("lenet", 1, 28, 28, 10));
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
   * Builds the job's model with its optimizer, weight decay and seed.
   *
   * @param job the job
   * @return a configuration; every worker builds the same one
   */
  public static MultiLayerConfiguration configuration(JobConfig job) {
    final Spec spec = spec(job.modelName());
    final NeuralNetConfiguration.Builder base =
        new NeuralNetConfiguration.Builder()
            .seed(job.seed())
            .updater(updater(job))
            .weightInit(WeightInit.ZERO)
            .trainingWorkspaceMode(WorkspaceMode.ENABLED)
            .inferenceWorkspaceMode(WorkspaceMode.ENABLED);
    if (job.weightDecay() > 0) {
      base.l2(job.weightDecay()).l2Bias(job.weightDecay());
    }
    return switch (spec.name()) {
      case "lenet" -> lenet(base, spec);
      default -> throw new IllegalStateException("no builder for " + spec.name());
    };
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
  public static void initialize(MultiLayerNetwork network, long seed) {
    final SplittableRandom random = new SplittableRandom(seed);
    for (int i = 0; i < network.getnLayers(); i++) {
      final Map<String, INDArray> params = network.getLayer(i).paramTable();
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
  private static MultiLayerConfiguration lenet(NeuralNetConfiguration.Builder base, Spec spec) {
    return base.list()
        .layer(new ConvolutionLayer.Builder(5, 5).nOut(20).activation(Activation.RELU).build())
        .layer(
            new SubsamplingLayer.Builder(SubsamplingLayer.PoolingType.MAX)
                .kernelSize(2, 2)
                .stride(2, 2)
                .build())
        .layer(new ConvolutionLayer.Builder(5, 5).nOut(50).activation(Activation.RELU).build())
        .layer(
            new SubsamplingLayer.Builder(SubsamplingLayer.PoolingType.MAX)
                .kernelSize(2, 2)
                .stride(2, 2)
                .build())
        .layer(new DenseLayer.Builder().nOut(500).activation(Activation.RELU).build())
        .layer(
            new OutputLayer.Builder(LossFunctions.LossFunction.MCXENT)
                .nOut(spec.classes())
                .activation(Activation.SOFTMAX)
                .build())
        .setInputType(InputType.convolutionalFlat(spec.height(), spec.width(), spec.channels()))
        .build();
  }

  static IUpdater updater(JobConfig job) {
    final double lr = job.learningRate();
    return switch (job.optimizer()) {
      case SGD -> new Sgd(lr);
      case MOMENTUM -> new Momentum(lr, job.momentum());
      case NESTEROV -> new Nesterovs(lr, job.momentum());
      case ADAM -> new Adam(lr);
      case ADAGRAD -> new AdaGrad(lr);
      case RMSPROP -> new RmsProp(lr);
    };
  }
}
