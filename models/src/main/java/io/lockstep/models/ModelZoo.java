package io.lockstep.models;

import io.lockstep.conf.ConfigurationException;
import io.lockstep.conf.JobConfig;
import io.lockstep.conf.Keys;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.deeplearning4j.nn.conf.MultiLayerConfiguration;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.WorkspaceMode;
import org.deeplearning4j.nn.conf.distribution.UniformDistribution;
import org.deeplearning4j.nn.conf.inputs.InputType;
import org.deeplearning4j.nn.conf.layers.ConvolutionLayer;
import org.deeplearning4j.nn.conf.layers.DenseLayer;
import org.deeplearning4j.nn.conf.layers.OutputLayer;
import org.deeplearning4j.nn.conf.layers.SubsamplingLayer;
import org.deeplearning4j.nn.weights.WeightInitDistribution;
import org.nd4j.linalg.activations.Activation;
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
   * The seeds' LeNet: conv 5x5x20, max-pool 2, conv 5x5x50, max-pool 2, dense 500 ReLU, softmax.
   * Weights start uniform in +-1/sqrt(fan-in), PyTorch's default for these layers, so the two
   * frameworks start from the same distribution.
   */
  private static MultiLayerConfiguration lenet(NeuralNetConfiguration.Builder base, Spec spec) {
    return base.list()
        .layer(
            new ConvolutionLayer.Builder(5, 5)
                .nOut(20)
                .activation(Activation.RELU)
                .weightInit(uniformFanIn(spec.channels() * 25))
                .build())
        .layer(
            new SubsamplingLayer.Builder(SubsamplingLayer.PoolingType.MAX)
                .kernelSize(2, 2)
                .stride(2, 2)
                .build())
        .layer(
            new ConvolutionLayer.Builder(5, 5)
                .nOut(50)
                .activation(Activation.RELU)
                .weightInit(uniformFanIn(20 * 25))
                .build())
        .layer(
            new SubsamplingLayer.Builder(SubsamplingLayer.PoolingType.MAX)
                .kernelSize(2, 2)
                .stride(2, 2)
                .build())
        .layer(
            new DenseLayer.Builder()
                .nOut(500)
                .activation(Activation.RELU)
                .weightInit(uniformFanIn(800))
                .build())
        .layer(
            new OutputLayer.Builder(LossFunctions.LossFunction.MCXENT)
                .nOut(spec.classes())
                .activation(Activation.SOFTMAX)
                .weightInit(uniformFanIn(500))
                .build())
        .setInputType(InputType.convolutionalFlat(spec.height(), spec.width(), spec.channels()))
        .build();
  }

  private static WeightInitDistribution uniformFanIn(int fanIn) {
    final double bound = 1.0 / Math.sqrt(fanIn);
    return new WeightInitDistribution(new UniformDistribution(-bound, bound));
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
