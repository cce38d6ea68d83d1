package io.lockstep.models;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.lockstep.conf.ConfigurationException;
import io.lockstep.conf.JobConfig;
import io.lockstep.conf.Keys;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.graph.FrozenVertex;
import org.deeplearning4j.nn.conf.graph.GraphVertex;
import org.deeplearning4j.nn.conf.graph.LayerVertex;
import org.deeplearning4j.nn.conf.layers.misc.FrozenLayer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.util.ModelSerializer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

class TransferTest {
  @TempDir Path dir;

  private static JobConfig job(String model, int freeze, int classes) {
    return JobConfig.load(
        JobConfig.overrides(
            Map.of(
                Keys.MODEL_NAME.name(),
                model,
                Keys.MODEL_PRETRAINED.name(),
                "unused.zip",
                Keys.MODEL_FREEZE_LAYERS.name(),
                Integer.toString(freeze),
                Keys.MODEL_CLASSES.name(),
                Integer.toString(classes))));
  }

  private static Set<String> frozen(ComputationGraphConfiguration configuration) {
    final Set<String> frozen = new TreeSet<>();
    configuration
        .getVertices()
        .forEach(
            (name, vertex) -> {
              if (vertex instanceof FrozenVertex
                  || (vertex instanceof LayerVertex layer
                      && layer.getLayerConf().getLayer() instanceof FrozenLayer)) {
                frozen.add(name);
              }
            });
    return frozen;
  }

  @Test
  void freezingLeNetsFirstTwoLayersFreezesThePoolingBetweenThem() {
    final ComputationGraphConfiguration configuration =
        ModelZoo.configuration(job("lenet", 2, 0), 10);
    assertEquals(Set.of("conv1", "pool1", "conv2"), frozen(configuration));
    // only fc1 and the head train: 800*500+500 + 500*10+10
    assertEquals(405_510, ModelZoo.trainableParameters(configuration));
    // the configuration travels to the workers as JSON
    final ComputationGraphConfiguration back =
        ComputationGraphConfiguration.fromJson(configuration.toJson());
    assertEquals(Set.of("conv1", "pool1", "conv2"), frozen(back));
  }

  @Test
  void freezingAResNetFreezesEveryVertexBelowTheFrozenLayers() {
    final ComputationGraphConfiguration configuration =
        ModelZoo.configuration(job("resnet-mini", 9, 0), 10);
    final Set<String> frozen = frozen(configuration);
    // everything the 4th layer with parameters depends on, additions included, and nothing above
    for (String name : frozen) {
      final GraphVertex vertex = configuration.getVertices().get(name);
      assertTrue(
          vertex instanceof FrozenVertex || vertex instanceof LayerVertex, name + " " + vertex);
    }
    assertEquals(
        Set.of(
            "stem",
            "stem_bn",
            "stem_relu",
            "block1_conv1",
            "block1_bn1",
            "block1_relu1",
            "block1_conv2",
            "block1_bn2",
            "block1_proj",
            "block1_proj_bn",
            "block1_add",
            "block1_out",
            "block2_conv1"),
        frozen);
    assertInstanceOf(FrozenVertex.class, configuration.getVertices().get("block1_add"));
    for (Map.Entry<String, java.util.List<String>> e : configuration.getVertexInputs().entrySet()) {
      if (frozen.contains(e.getKey())) {
        for (String input : e.getValue()) {
          assertTrue(
              frozen.contains(input) || configuration.getNetworkInputs().contains(input),
              e.getKey() + " is frozen but its input " + input + " is not");
        }
      }
    }
    final ComputationGraph network = new ComputationGraph(configuration);
    network.init();
    assertEquals(10, network.output(false, Nd4j.rand(DataType.FLOAT, 2, 1, 28, 28))[0].size(1));
  }

  @Test
  void freezingMoreLayersThanTheBodyHasIsRefused() {
    final ConfigurationException e =
        assertThrows(
            ConfigurationException.class, () -> ModelZoo.configuration(job("lenet", 4, 0), 10));
    assertTrue(e.getMessage().contains("lockstep.model.freeze-layers=4"), e.getMessage());
    assertTrue(e.getMessage().contains("freeze at most 3"), e.getMessage());
  }

  @Test
  void theClassesKeyWidensTheHead() {
    assertEquals(new ModelZoo.Spec("lenet", 1, 28, 28, 26), ModelZoo.spec(job("lenet", 0, 26)));
    final ComputationGraph network =
        new ComputationGraph(ModelZoo.configuration(job("lenet", 0, 26), 10));
    network.init();
    assertEquals(26, network.output(false, Nd4j.rand(DataType.FLOAT, 2, 1, 28, 28))[0].size(1));
  }

  @Test
  void theBodyIsLoadedAndTheHeadKeepsItsOwnWeights() throws IOException {
    final ComputationGraph saved = Networks.of("lenet");
    ModelZoo.initialize(saved, 7);
    final Path file = dir.resolve("fashion.zip");
    ModelSerializer.writeModel(saved, file.toFile(), true);

    final ComputationGraph network =
        new ComputationGraph(ModelZoo.configuration(job("lenet", 1, 26), 10));
    network.init();
    ModelZoo.initialize(network, 0);
    final Map<String, INDArray> headBefore = copy(network.getLayer("output").paramTable());
    Transfer.loadBody(network, file.toString(), "lenet");
    for (String layer : new String[] {"conv1", "conv2", "fc1"}) {
      saved
          .getLayer(layer)
          .paramTable()
          .forEach(
              (key, values) ->
                  assertEquals(values, network.getLayer(layer).paramTable().get(key), layer + key));
    }
    assertEquals(headBefore, network.getLayer("output").paramTable());
    assertNotEquals(
        saved.getLayer("output").paramTable().get("b").length(),
        network.getLayer("output").paramTable().get("b").length());
    assertInstanceOf(org.deeplearning4j.nn.layers.FrozenLayer.class, network.getLayer("conv1"));
  }

  @Test
  void aSavedModelOfAnotherArchitectureIsRefusedNamingTheLayer() throws IOException {
    final ComputationGraph other = Networks.of("resnet-mini");
    final Path file = dir.resolve("resnet.zip");
    ModelSerializer.writeModel(other, file.toFile(), false);
    final ComputationGraph network = Networks.of("lenet");
    final ConfigurationException e =
        assertThrows(
            ConfigurationException.class,
            () -> Transfer.loadBody(network, file.toString(), "lenet"));
    assertTrue(e.getMessage().startsWith("lockstep.model.pretrained=" + file), e.getMessage());
    assertTrue(e.getMessage().contains("same architecture"), e.getMessage());

    final ComputationGraph cifar = Networks.of("simple-cnn");
    final Path cifarFile = dir.resolve("cifar.zip");
    ModelSerializer.writeModel(cifar, cifarFile.toFile(), false);
    final ConfigurationException shapes =
        assertThrows(
            ConfigurationException.class,
            () -> Transfer.loadBody(network, cifarFile.toString(), "lenet"));
    assertTrue(shapes.getMessage().contains("conv1"), shapes.getMessage());
  }

  @Test
  void aMissingOrGarbageFileIsRefused() throws IOException {
    final ComputationGraph network = Networks.of("lenet");
    final ConfigurationException missing =
        assertThrows(
            ConfigurationException.class,
            () -> Transfer.loadBody(network, dir.resolve("none.zip").toString(), "lenet"));
    assertTrue(missing.getMessage().contains("no such file"), missing.getMessage());
    final Path garbage = Files.writeString(dir.resolve("garbage.zip"), "not a zip");
    final ConfigurationException bad =
        assertThrows(
            ConfigurationException.class,
            () -> Transfer.loadBody(network, garbage.toString(), "lenet"));
    assertTrue(
        bad.getMessage().startsWith("lockstep.model.pretrained=" + garbage + ": not a zip file"),
        bad.getMessage());
    final Path saved = dir.resolve("saved.zip");
    ModelSerializer.writeModel(network, saved.toFile(), false);
    final byte[] whole = Files.readAllBytes(saved);
    final Path cut = Files.write(dir.resolve("cut.zip"), Arrays.copyOf(whole, whole.length - 10));
    final ConfigurationException truncated =
        assertThrows(
            ConfigurationException.class,
            () -> Transfer.loadBody(network, cut.toString(), "lenet"));
    assertTrue(
        truncated.getMessage().startsWith("lockstep.model.pretrained=" + cut + ": truncated"),
        truncated.getMessage());
    assertTrue(truncated.getMessage().endsWith("give a saved model (a run's model.zip)"));
    final Path folder = Files.createDirectories(dir.resolve("folder.zip"));
    final ConfigurationException notAFile =
        assertThrows(
            ConfigurationException.class,
            () -> Transfer.loadBody(network, folder.toString(), "lenet"));
    assertTrue(
        notAFile.getMessage().contains(": a folder where the file should be"),
        notAFile.getMessage());
  }

  private static Map<String, INDArray> copy(Map<String, INDArray> params) {
    final Map<String, INDArray> copy = new HashMap<>();
    params.forEach((k, v) -> copy.put(k, v.dup()));
    return copy;
  }
}
