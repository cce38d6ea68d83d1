package io.lockstep.models;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.lockstep.conf.ConfigurationException;
import io.lockstep.conf.JobConfig;
import io.lockstep.conf.Keys;
import java.util.Map;
import java.util.Set;
import java.util.stream.Collectors;
import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.inputs.InputType;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/** The zoo's models as the seeds and torchvision define them. */
class ModelZooTest {

  private static ComputationGraph network(String model) {
    return Networks.of(model);
  }

  private static ComputationGraphConfiguration configuration(String model) {
    return ModelZoo.configuration(
        JobConfig.load(JobConfig.overrides(Map.of(Keys.MODEL_NAME.name(), model))), 10);
  }

  /**
   * Trainable parameters as {@code sum(p.numel() for p in m.parameters() if p.requires_grad)} gives
   * them for torchvision 0.14's {@code models.NAME()} ({@code googlenet(aux_logits=True)}), Keras's
   * MobileNet, and the seeds' PyTorch definitions.
   */
  @ParameterizedTest(name = "{0}")
  @CsvSource({
    "alexnet, 61100840",
    "vgg16, 138357544",
    "vgg19, 143667240",
    "resnet18, 11689512",
    "resnet34, 21797672",
    "resnet50, 25557032",
    "densenet121, 7978856",
    "googlenet, 13004888",
    "mobilenet_v2, 3504872",
    "mobilenet_v1, 4231976",
    "lenet, 431080",
    "lenet-cifar, 62006",
    "feedforward, 397802",
    "simple-cnn, 545098",
    "resnet18-cifar, 11173962",
    // 3x3 convolutions 3-16-32-64-128-128 and the 1x1 head to 3 anchors x (5 + 3 classes)
    "shapes-yolo, 248120",
    // the same convolutions 3-16-32-64 (23,584), embedding 12x16, LSTM 16->64 (20,736), 64->4096
    // (266,240), convs 128->128->64 (221,376), fc 4096->128 (524,416), box 128->4 (516)
    "shapes-grounding, 756600"
  })
  void trainableParametersAreTheReferencesCount(String model, long parameters) {
    assertEquals(parameters, ModelZoo.trainableParameters(configuration(model)));
  }

  @Test
  void everyModelIsListedWithItsInput() {
    final Set<String> names =
        ModelZoo.all().stream().map(ModelZoo.Spec::name).collect(Collectors.toSet());
    assertEquals(
        Set.of(
            "alexnet",
            "vgg16",
            "vgg19",
            "resnet18",
            "resnet34",
            "resnet50",
            "densenet121",
            "googlenet",
            "mobilenet_v1",
            "mobilenet_v2",
            "lenet",
            "lenet-cifar",
            "feedforward",
            "simple-cnn",
            "resnet-mini",
            "resnet18-cifar",
            "shapes-yolo",
            "shapes-grounding"),
        names);
    assertEquals(
        new ModelZoo.Spec("shapes-yolo", 3, 64, 64, 3, ModelZoo.Task.DETECTION),
        ModelZoo.spec("shapes-yolo"));
    assertEquals(8, ModelZoo.spec("shapes-yolo").grid());
    assertOutput("shapes-yolo", "yolo_head", 3 * (5 + 3), 8);
    assertEquals(new ModelZoo.Spec("resnet50", 3, 224, 224, 1000), ModelZoo.spec("resnet50"));
    final ConfigurationException unknown =
        assertThrows(ConfigurationException.class, () -> ModelZoo.spec("resnet51"));
    assertTrue(unknown.getMessage().contains("resnet50"), unknown.getMessage());
  }

  /** The feature map sizes that make the classifiers' shapes torchvision's at 224x224. */
  @Test
  void imageNetFeatureMapsHaveTorchvisionsSizes() {
    assertOutput("alexnet", "pool5", 256, 6); // AdaptiveAvgPool2d((6, 6)) is the identity
    assertOutput("vgg16", "pool5", 512, 7);
    assertOutput("resnet18", "stem_pool", 64, 56);
    assertOutput("resnet50", "layer4_2_out", 2048, 7);
    assertOutput("densenet121", "relu5", 1024, 7);
    // ceil-mode pooling: 112 -> 56 -> 28 -> 14 -> 7
    assertOutput("googlenet", "pool1", 64, 56);
    assertOutput("googlenet", "inception3b", 480, 28);
    assertOutput("googlenet", "aux1_pool", 512, 4);
    assertOutput("googlenet", "aux2_pool", 528, 4);
    assertOutput("googlenet", "inception5b", 1024, 7);
    assertOutput("mobilenet_v2", "head_relu", 1280, 7);
    assertOutput("mobilenet_v1", "block13_pw_relu", 1024, 7);
  }

  private static void assertOutput(String model, String vertex, int channels, int size) {
    final ModelZoo.Spec spec = ModelZoo.spec(model);
    final Map<String, InputType> types =
        configuration(model)
            .getLayerActivationTypes(
                InputType.convolutional(spec.height(), spec.width(), spec.channels()));
    final InputType.InputTypeConvolutional type =
        (InputType.InputTypeConvolutional) types.get(vertex);
    assertEquals(
        channels + "x" + size + "x" + size,
        type.getChannels() + "x" + type.getHeight() + "x" + type.getWidth(),
        model + " " + vertex);
  }

  @Test
  void lenetForCifarIsTheTutorialsNetwork() {
    final ComputationGraph network = network("lenet-cifar");
    // conv1 3*6*25+6, conv2 6*16*25+16, fc1 400*120+120, fc2 120*84+84, fc3 84*10+10
    assertEquals(456 + 2_416 + 48_120 + 10_164 + 850, network.numParams());
    assertArrayEquals(new long[] {6, 3, 5, 5}, network.getLayer("conv1").getParam("W").shape());
    assertArrayEquals(new long[] {400, 120}, network.getLayer("fc1").getParam("W").shape());
    final INDArray images = Nd4j.rand(DataType.FLOAT, 4, 3, 32, 32);
    final INDArray out = network.outputSingle(images);
    assertArrayEquals(new long[] {4, 10}, out.shape());
    assertEquals(new ModelZoo.Spec("lenet-cifar", 3, 32, 32, 10), ModelZoo.spec("lenet-cifar"));
  }

  @Test
  void trainableCountLeavesOutOnlyBatchNormStatistics() {
    final ComputationGraph network = network("resnet-mini");
    long statistics = 0;
    for (org.deeplearning4j.nn.api.Layer layer : network.getLayers()) {
      if (layer instanceof org.deeplearning4j.nn.layers.normalization.BatchNormalization) {
        // the running mean and variance (or log10 standard deviation) beside gamma and beta
        for (Map.Entry<String, INDArray> param : layer.paramTable().entrySet()) {
          if (!Set.of("gamma", "beta").contains(param.getKey())) {
            statistics += param.getValue().length();
          }
        }
      }
    }
    assertTrue(statistics > 0);
    assertEquals(
        network.numParams() - statistics,
        ModelZoo.trainableParameters(configuration("resnet-mini")));
  }
}
