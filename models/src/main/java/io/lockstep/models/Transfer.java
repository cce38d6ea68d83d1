package io.lockstep.models;

import io.lockstep.conf.ConfigurationException;
import io.lockstep.conf.Keys;
import java.io.File;
import java.io.IOException;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Deque;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.deeplearning4j.nn.api.Layer;
import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.graph.FrozenVertex;
import org.deeplearning4j.nn.conf.graph.GraphVertex;
import org.deeplearning4j.nn.conf.graph.LayerVertex;
import org.deeplearning4j.nn.conf.layers.misc.FrozenLayer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.nn.multilayer.MultiLayerNetwork;
import org.deeplearning4j.util.ModelSerializer;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * Transfer learning: a network starts from a saved model's weights, with a fresh head, and may keep
 * its first layers as they were (a feature extractor).
 *
 * <p>A model's <em>body</em> is its layers with parameters, in definition order, less its output
 * layers (the <em>head</em>). A saved model fits a job's model when the two bodies have the same
 * number of layers and every pair the same parameters with the same shapes: names need not match,
 * so a Deeplearning4j {@code MultiLayerNetwork} zip fits as well as a graph.
 */
public final class Transfer {
  private Transfer() {}

  /**
   * Freezes the first {@code layers} layers of the body and every vertex they depend on, as
   * Deeplearning4j's {@code TransferLearning.setFeatureExtractor} does: layers are wrapped in
   * {@link FrozenLayer} (they compute in inference mode, so BatchNorm uses its running statistics
   * and dropout is off, and take no gradient, update or weight decay), other vertices in {@link
   * FrozenVertex}; the backward pass stops above them.
   *
   * @param configuration a model's configuration, changed in place
   * @param layers how many of the body's layers to freeze, at least 1
   * @param model the model's name, for errors
   * @return {@code configuration}
   * @throws ConfigurationException when the body has fewer layers than {@code layers}
   */
  public static ComputationGraphConfiguration freeze(
      ComputationGraphConfiguration configuration, int layers, String model) {
    final List<String> body = body(configuration);
    if (layers > body.size()) {
      throw new ConfigurationException(
          String.format(
              "%s=%d, but model %s has %d layers with parameters below its head; freeze at most"
                  + " %d, or 0 to fine-tune every layer",
              Keys.MODEL_FREEZE_LAYERS.name(), layers, model, body.size(), body.size()));
    }
    final Map<String, GraphVertex> vertices = configuration.getVertices();
    final Map<String, List<String>> inputs = configuration.getVertexInputs();
    final Set<String> inputNames = Set.copyOf(configuration.getNetworkInputs());
    final Deque<String> pending = new ArrayDeque<>(body.subList(0, layers));
    final Set<String> frozen = new HashSet<>();
    while (!pending.isEmpty()) {
      final String name = pending.pop();
      if (inputNames.contains(name) || !frozen.add(name)) {
        continue;
      }
      pending.addAll(inputs.getOrDefault(name, List.of()));
    }
    for (String name : frozen) {
      final GraphVertex vertex = vertices.get(name);
      if (vertex instanceof LayerVertex layerVertex) {
        final org.deeplearning4j.nn.conf.layers.Layer layer = layerVertex.getLayerConf().getLayer();
        final FrozenLayer frozenLayer = new FrozenLayer(layer);
        frozenLayer.setLayerName(layer.getLayerName());
        layerVertex.getLayerConf().setLayer(frozenLayer);
      } else {
        vertices.put(name, new FrozenVertex(vertex));
      }
    }
    return configuration;
  }

  /**
   * Copies a saved model's body into {@code network}'s body, parameter by parameter; the head keeps
   * the weights it has (a fresh one for a new task).
   *
   * @param network the job's initialized network
   * @param file a Deeplearning4j {@code ModelSerializer} zip
   * @param model the job's model name, for errors
   * @throws ConfigurationException when the file is missing, damaged ({@link ModelFile#check}) or
   *     not a model, or its body does not fit
   */
  public static void loadBody(ComputationGraph network, String file, String model) {
    final ComputationGraph saved = read(file);
    final List<Layer> from = bodyLayers(saved);
    final List<Layer> to = bodyLayers(network);
    if (from.size() != to.size()) {
      throw new ConfigurationException(
          String.format(
              "%s=%s has %d layers with parameters below its head, model %s has %d; start from a"
                  + " model of the same architecture (%s)",
              Keys.MODEL_PRETRAINED.name(),
              file,
              from.size(),
              model,
              to.size(),
              Keys.MODEL_NAME.name()));
    }
    for (int i = 0; i < to.size(); i++) {
      final Map<String, INDArray> source = from.get(i).paramTable();
      final Map<String, INDArray> target = to.get(i).paramTable();
      if (!source.keySet().equals(target.keySet()) || !sameShapes(source, target)) {
        throw new ConfigurationException(
            String.format(
                "%s=%s: its layer %d with parameters, %s, holds %s, but model %s's layer %d, %s,"
                    + " needs %s; start from a model of the same architecture (%s)",
                Keys.MODEL_PRETRAINED.name(),
                file,
                i + 1,
                name(from.get(i)),
                shapes(source),
                model,
                i + 1,
                name(to.get(i)),
                shapes(target),
                Keys.MODEL_NAME.name()));
      }
      target.forEach((key, values) -> values.assign(source.get(key)));
    }
  }

  private static ComputationGraph read(String file) {
    final String name = Keys.MODEL_PRETRAINED.name() + "=" + file;
    final String fix = "give a saved model (a run's model.zip)";
    final File path = new File(file);
    ModelFile.check(path.toPath(), name, fix);
    try {
      return ModelSerializer.restoreComputationGraph(path, false);
    } catch (IOException | RuntimeException notAGraph) {
      try {
        final MultiLayerNetwork network = ModelSerializer.restoreMultiLayerNetwork(path, false);
        return network.toComputationGraph();
      } catch (IOException | RuntimeException notANetwork) {
        notAGraph.addSuppressed(notANetwork);
        throw new ConfigurationException(
            name
                + " is not a Deeplearning4j ModelSerializer zip ("
                + firstLine(notAGraph)
                + "); "
                + fix,
            notAGraph);
      }
    }
  }

  private static String firstLine(Throwable e) {
    final String message = e.getMessage();
    return message == null || message.isBlank()
        ? e.getClass().getSimpleName()
        : message.lines().findFirst().orElse(message);
  }

  /** The body's vertex names: layers with parameters, in definition order, outputs left out. */
  private static List<String> body(ComputationGraphConfiguration configuration) {
    final Set<String> outputs = Set.copyOf(configuration.getNetworkOutputs());
    final List<String> body = new ArrayList<>();
    for (Map.Entry<String, GraphVertex> entry : configuration.getVertices().entrySet()) {
      if (entry.getValue() instanceof LayerVertex vertex && !outputs.contains(entry.getKey())) {
        final org.deeplearning4j.nn.conf.layers.Layer layer = vertex.getLayerConf().getLayer();
        if (layer.initializer().numParams(layer) > 0) {
          body.add(entry.getKey());
        }
      }
    }
    return body;
  }

  private static List<Layer> bodyLayers(ComputationGraph network) {
    return body(network.getConfiguration()).stream().map(network::getLayer).toList();
  }

  private static boolean sameShapes(Map<String, INDArray> a, Map<String, INDArray> b) {
    return a.entrySet().stream()
        .allMatch(e -> Arrays.equals(e.getValue().shape(), b.get(e.getKey()).shape()));
  }

  private static String shapes(Map<String, INDArray> params) {
    final StringBuilder text = new StringBuilder();
    params.forEach(
        (key, values) ->
            text.append(text.isEmpty() ? "" : " ")
                .append(key)
                .append(Arrays.toString(values.shape())));
    return text.toString();
  }

  private static String name(Layer layer) {
    return layer.conf().getLayer().getLayerName();
  }
}
