package io.lockstep.worker;

import io.lockstep.conf.ComputeEngine;
import io.lockstep.conf.ConfigurationException;
import io.lockstep.conf.Keys;
import io.lockstep.conf.Precision;
import io.lockstep.models.ComputeHelpers;
import io.lockstep.models.ModelZoo;
import io.lockstep.models.SampleDropout;
import io.lockstep.models.StatisticsReducer;
import io.lockstep.models.SyncBatchNormLayer;
import io.lockstep.ps.client.GradientExchange;
import io.lockstep.worker.engine.CompiledNetwork;
import io.lockstep.worker.engine.UnsupportedNetworkException;
import io.lockstep.worker.input.NativeMemory;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import org.agrona.concurrent.UnsafeBuffer;
import org.deeplearning4j.nn.api.Layer;
import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.gradient.DefaultGradient;
import org.deeplearning4j.nn.gradient.Gradient;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.nn.graph.vertex.GraphVertex;
import org.deeplearning4j.nn.graph.vertex.impl.LayerVertex;
import org.deeplearning4j.nn.layers.FrozenLayer;
import org.deeplearning4j.nn.layers.FrozenLayerWithBackprop;
import org.deeplearning4j.nn.workspace.LayerWorkspaceMgr;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.INDArrayIndex;
import org.nd4j.linalg.indexing.NDArrayIndex;

/**
 * One copy of the model and its optimizer, stepped the way Deeplearning4j's {@code fit()} steps it,
 * but with the gradient sum exchanged between the backward pass and the update: {@code
 * computeGradients} leaves the sum over this replica's samples in {@link #gradientBuffer()}, the
 * caller replaces it with the sum over the global batch, and {@code applyUpdate} divides by the
 * global batch size inside the updater, applies the optimizer and subtracts the step.
 *
 * <p>Running statistics (BatchNorm's mean and variance) travel in the same buffer: Deeplearning4j
 * stores their update {@code (1 - decay) * (running - batch statistic)} as their "gradient" and
 * applies it undivided. Each replica scales its own by its share (1 on rank 0 and 0 elsewhere, or
 * its slice's fraction of the global batch), so the exchanged sum is one update that every replica
 * applies identically: the statistics never drift apart.
 *
 * <p>SyncBatchNorm layers sum their batch statistics over the replicas through a {@link
 * StatisticsReducer} during the forward and backward pass; a replica with an empty slice still
 * takes part, with zeros, in every round.
 */
public final class Replica implements AutoCloseable {
  /** PyTorch's {@code clip_grad_norm_} adds this to the norm before dividing. */
  private static final double CLIP_EPSILON = 1e-6;

  private final ComputationGraph network;
  private final Gradient gradient;
  private final UnsafeBuffer gradientBuffer;

  /**
   * The trainable parameters' gradient as few flat views as possible: adjacent views merged, so the
   * norm and the clipping of a step are a handful of operations (one for a model without BatchNorm)
   * instead of one per parameter array.
   */
  private final List<INDArray> trainableRanges;

  private final List<INDArray> runningStatistics;

  /**
   * The gradient of frozen layers (transfer learning), which their backward pass never writes:
   * zeroed before every pass, so nothing left in the buffer by an exchange or an average becomes a
   * step.
   */
  private final List<INDArray> frozenRanges;

  /** Each layer's running-statistics views, for the layers that have any. */
  private final Map<Layer, List<INDArray>> statisticsByLayer;

  private final String configurationJson;
  private final List<SyncBatchNormLayer> synchronizedLayers;

  /** The oneDNN step, or null where Deeplearning4j's layers compute. */
  private final CompiledNetwork compiled;

  /** The engine asked for. */
  private final ComputeEngine choice;

  /** The number format asked for. */
  private final Precision precision;

  /** What computes the passes, for logs and summaries. */
  private final String engine;

  /** The optimizer step in one pass, or null where Deeplearning4j's updater runs. */
  private final FusedMomentumStep fusedStep;

  private StatisticsReducer reducer;

  /** The running-statistics views that no {@link ObservedLayer} scales: all, until observed. */
  private List<INDArray> unobservedStatistics;

  private boolean layersObserved;

  private BackwardProgress progress;

  /** The micro-batches' gradient sum so far, allocated with the first accumulating step. */
  private INDArray accumulated;

  /**
   * One slice's micro-batches' sum so far, where a replica computes several slices of which some in
   * several micro-batches (a worker standing in for lost ones).
   */
  private INDArray sliceAccumulated;

  /** The arrays of {@link #resultSnapshot}, allocated with its first call. */
  private float[] resultParameters;

  private float[] resultUpdaterState;

  /** Every layer's dropout, told the keys of each forward pass's samples. */
  private final List<SampleDropout> dropouts = new ArrayList<>();

  private double statisticsShare = 1;
  private double lastLoss;
  private double lastGradientNorm;

  private Replica(
      ComputationGraph network,
      String configurationJson,
      ComputeEngine choice,
      Precision precision) {
    this.network = network;
    this.choice = choice;
    this.precision = precision;
    this.configurationJson = configurationJson;
    this.runningStatistics = new ArrayList<>();
    this.statisticsByLayer = new IdentityHashMap<>();
    final INDArray view = network.getGradientsViewArray();
    if (view.dataType() != DataType.FLOAT || view.length() > Integer.MAX_VALUE / Float.BYTES) {
      throw new IllegalStateException(
          "gradients must be float32 and below 2 GiB; got "
              + view.dataType()
              + " x "
              + view.length());
    }
    final List<INDArray> trainable = new ArrayList<>();
    final List<INDArray> frozen = new ArrayList<>();
    this.gradient = viewsOf(network, trainable, frozen, statisticsByLayer);
    this.trainableRanges = merged(view, trainable);
    this.frozenRanges = merged(view, frozen);
    statisticsByLayer.values().forEach(runningStatistics::addAll);
    this.unobservedStatistics = runningStatistics;
    this.synchronizedLayers = new ArrayList<>();
    final GraphVertex[] vertices = network.getVertices();
    for (int index : network.topologicalSortOrder()) {
      if (vertices[index].hasLayer()
          && vertices[index].getLayer() instanceof SyncBatchNormLayer layer) {
        synchronizedLayers.add(layer);
      }
      if (vertices[index].hasLayer()
          && vertices[index].getLayer().conf().getLayer().getIDropout()
              instanceof SampleDropout dropout) {
        dropouts.add(dropout);
      }
    }
    this.gradientBuffer = new UnsafeBuffer(nativeAddress(view), (int) view.length() * Float.BYTES);
    CompiledNetwork step = null;
    String description = "deeplearning4j";
    if (precision == Precision.BF16) {
      checkBf16(choice);
    }
    if (choice != ComputeEngine.DEEPLEARNING4J) {
      try {
        step = CompiledNetwork.compile(network, precision);
        description = precision == Precision.BF16 ? "onednn bf16" : "onednn";
      } catch (UnsupportedNetworkException e) {
        if (precision == Precision.BF16) {
          throw new ConfigurationException(
              Keys.COMPUTE_PRECISION.name()
                  + "=bf16 needs the oneDNN engine, which cannot compute this model: "
                  + e.getMessage()
                  + "; use fp32");
        }
        if (choice == ComputeEngine.ONEDNN) {
          throw new ConfigurationException(
              Keys.WORKER_ENGINE.name()
                  + "=onednn cannot compute this model: "
                  + e.getMessage()
                  + "; use auto or deeplearning4j");
        }
        description = "deeplearning4j (the oneDNN engine does not compute " + e.getMessage() + ")";
      }
    }
    this.compiled = step;
    this.engine = description;
    this.fusedStep = FusedMomentumStep.of(network, Nd4j.getEnvironment().maxThreads()).orElse(null);
  }

  /** Refuses bfloat16 where it cannot run: on Deeplearning4j's layers, or on this CPU. */
  private static void checkBf16(ComputeEngine choice) {
    if (choice == ComputeEngine.DEEPLEARNING4J) {
      throw new ConfigurationException(
          Keys.COMPUTE_PRECISION.name()
              + "=bf16 needs the oneDNN engine; "
              + Keys.WORKER_ENGINE.name()
              + "=deeplearning4j computes float32 only: use auto or onednn, or fp32");
    }
    if (!CompiledNetwork.computesBf16()) {
      throw new ConfigurationException(
          Keys.COMPUTE_PRECISION.name()
              + "=bf16 needs a CPU with AVX512_BF16 or AMX, and this one offers oneDNN "
              + CompiledNetwork.instructionSet()
              + ": use fp32 on this host");
    }
  }

  /**
   * @return whether the optimizer step runs fused ({@link FusedMomentumStep}) rather than through
   *     Deeplearning4j's updater
   */
  boolean fusesOptimizerStep() {
    return fusedStep != null;
  }

  /**
   * Frees what the replica holds natively, now rather than when the collector finds it: the oneDNN
   * engine's plans, the micro-batches' sum, the network's parameters, gradients and optimizer
   * state, and the calling thread's Deeplearning4j workspaces (the thread that computed with it).
   * The replica and its {@link #network} cannot be used afterwards.
   */
  @Override
  public void close() {
    if (compiled != null) {
      compiled.close();
    }
    if (fusedStep != null) {
      fusedStep.close();
    }
    NativeMemory.release(accumulated, sliceAccumulated);
    accumulated = null;
    sliceAccumulated = null;
    final org.deeplearning4j.nn.api.Updater updater = network.getUpdater(false);
    NativeMemory.release(
        network.params(),
        network.getGradientsViewArray(),
        updater == null ? null : updater.getStateViewArray());
    Nd4j.getWorkspaceManager().destroyAllWorkspacesForCurrentThread();
  }

  /**
   * @return what computes this replica's forward and backward passes: {@code onednn}, or {@code
   *     deeplearning4j} with the reason when the engine was asked for
   */
  public String engine() {
    return engine;
  }

  /**
   * A fresh replica, its weights drawn from the configuration's seed by {@link
   * ModelZoo#initialize}.
   *
   * @param configuration the network
   * @return the replica
   */
  public static Replica create(ComputationGraphConfiguration configuration) {
    return create(configuration, ComputeEngine.AUTO);
  }

  /**
   * A fresh replica, its weights drawn from the configuration's seed by {@link
   * ModelZoo#initialize}, computed by {@code engine}.
   *
   * @param configuration the network
   * @param engine what computes the forward and backward passes
   * @return the replica
   * @throws ConfigurationException when {@code engine} is oneDNN and the model has a layer it
   *     cannot compute
   */
  public static Replica create(ComputationGraphConfiguration configuration, ComputeEngine engine) {
    return create(configuration, engine, Precision.FP32);
  }

  /**
   * A fresh replica, its weights drawn from the configuration's seed by {@link
   * ModelZoo#initialize}, computed by {@code engine} in {@code precision}.
   *
   * @param configuration the network
   * @param engine what computes the forward and backward passes
   * @param precision the number format of convolutions and dense layers
   * @return the replica
   * @throws ConfigurationException when {@code engine} is oneDNN and the model has a layer it
   *     cannot compute, or {@code precision} is bfloat16 and cannot run here
   */
  public static Replica create(
      ComputationGraphConfiguration configuration, ComputeEngine engine, Precision precision) {
    ComputeHelpers.enable();
    final ComputationGraph network = new ComputationGraph(configuration);
    network.init();
    ComputeHelpers.detachUnsupported(network);
    ModelZoo.initialize(network, network.getConfiguration().getDefaultConfiguration().getSeed());
    network.getUpdater(true);
    return new Replica(network, configuration.toJson(), engine, precision);
  }

  /**
   * A replica restored from a snapshot, bit for bit.
   *
   * @param state the snapshot
   * @return the replica
   */
  public static Replica restore(ModelState state) {
    return restore(state, ComputeEngine.AUTO);
  }

  /**
   * A replica restored from a snapshot, bit for bit, computed by {@code engine}.
   *
   * @param state the snapshot
   * @param engine what computes the forward and backward passes
   * @return the replica
   * @throws ConfigurationException when {@code engine} is oneDNN and the model has a layer it
   *     cannot compute
   */
  public static Replica restore(ModelState state, ComputeEngine engine) {
    return restore(state, engine, Precision.FP32);
  }

  /**
   * A replica restored from a snapshot, bit for bit, computed by {@code engine} in {@code
   * precision}.
   *
   * @param state the snapshot
   * @param engine what computes the forward and backward passes
   * @param precision the number format of convolutions and dense layers
   * @return the replica
   * @throws ConfigurationException when {@code engine} is oneDNN and the model has a layer it
   *     cannot compute, or {@code precision} is bfloat16 and cannot run here
   */
  public static Replica restore(ModelState state, ComputeEngine engine, Precision precision) {
    ComputeHelpers.enable();
    final ComputationGraph network =
        new ComputationGraph(ComputationGraphConfiguration.fromJson(state.configurationJson()));
    network.init(
        Nd4j.create(state.parameters(), new long[] {1, state.parameters().length}, 'c'), false);
    ComputeHelpers.detachUnsupported(network);
    writeOptimizerState(network, state);
    return new Replica(network, state.configurationJson(), engine, precision);
  }

  /**
   * Writes a snapshot's optimizer state and iteration and epoch counters over a network's, in the
   * memory the network's updater already holds.
   *
   * @throws IllegalStateException when the snapshot's optimizer state has another size
   */
  private static void writeOptimizerState(ComputationGraph network, ModelState state) {
    final INDArray updaterView = network.getUpdater(true).getStateViewArray();
    if (updaterView != null) {
      if (updaterView.length() != state.updaterState().length) {
        throw new IllegalStateException(
            "optimizer state of "
                + state.updaterState().length
                + " floats, the model needs "
                + updaterView.length());
      }
      NativeMemory.write(updaterView, state.updaterState());
    }
    network.getConfiguration().setIterationCount(state.iteration());
    network.getConfiguration().setEpochCount(state.epoch());
  }

  /**
   * Whether {@link #load} can make this replica into {@code state}'s: the same network, computed by
   * the same engine.
   *
   * @param state a snapshot
   * @param choice what must compute the passes
   * @param precision the number format they must compute in
   * @return true when it can
   */
  boolean fits(ModelState state, ComputeEngine choice, Precision precision) {
    return this.choice == choice
        && this.precision == precision
        && configurationJson.equals(state.configurationJson());
  }

  /**
   * Makes this replica, bit for bit, what {@link #restore} makes of {@code state}, in the memory it
   * already holds: parameters, optimizer state and counters written over its own, the last stage's
   * reducer and progress receiver dropped. A stage reuses the last one's replica this way instead
   * of allocating a network, an engine and workspaces again.
   *
   * @param state a snapshot of the same network ({@link #fits})
   * @throws IllegalArgumentException when the snapshot is of another network
   */
  void load(ModelState state) {
    if (!configurationJson.equals(state.configurationJson())) {
      throw new IllegalArgumentException("the snapshot is of another network than the replica");
    }
    NativeMemory.write(network.params(), state.parameters());
    writeOptimizerState(network, state);
    beginStage();
  }

  /**
   * Whether this replica holds exactly the state of {@code fingerprint} ({@link
   * ModelState#fingerprint()}) and is computed by {@code choice}, so a stage can start from it as
   * it is.
   *
   * @param fingerprint a state's fingerprint
   * @param choice what must compute the passes
   * @param precision the number format they must compute in
   * @return true when it can
   */
  boolean holds(long fingerprint, ComputeEngine choice, Precision precision) {
    return this.choice == choice && this.precision == precision && fingerprint() == fingerprint;
  }

  /**
   * Readies this replica for a new stage: the last stage's activations, reducer and progress
   * receiver dropped. Its parameters, optimizer state and counters stay.
   */
  void beginStage() {
    network.clear();
    synchronizeStatistics(null);
    reportBackward(null);
    statisticsShare = 1;
    lastLoss = 0;
    lastGradientNorm = 0;
  }

  /** The native address of a float32 array's first element, for reading and writing in place. */
  static long nativeAddress(INDArray array) {
    return array.data().address() + array.offset() * Float.BYTES;
  }

  /** Views of {@code flat} covering exactly the elements of {@code views}, adjacent ones merged. */
  private static List<INDArray> merged(INDArray flat, List<INDArray> views) {
    final List<long[]> ranges = new ArrayList<>();
    views.stream()
        .map(v -> new long[] {v.offset() - flat.offset(), v.offset() - flat.offset() + v.length()})
        .sorted((a, b) -> Long.compare(a[0], b[0]))
        .forEach(
            range -> {
              final long[] last = ranges.isEmpty() ? null : ranges.get(ranges.size() - 1);
              if (last != null && last[1] == range[0]) {
                last[1] = range[1];
              } else {
                ranges.add(range);
              }
            });
    final INDArray row = flat.reshape(flat.length());
    final List<INDArray> merged = new ArrayList<>();
    for (long[] range : ranges) {
      merged.add(row.get(NDArrayIndex.interval(range[0], range[1])));
    }
    return merged;
  }

  /**
   * The per-parameter views of the flat gradient, keyed as Deeplearning4j's graph keys them; the
   * views of parameters the updater does not divide by the batch (running statistics) are added to
   * their layer's list in {@code statisticsByLayer}, frozen layers' to {@code frozen}, the others
   * to {@code trainable}.
   */
  static Gradient viewsOf(
      ComputationGraph network,
      List<INDArray> trainable,
      List<INDArray> frozen,
      Map<Layer, List<INDArray>> statisticsByLayer) {
    final INDArray flat = network.getGradientsViewArray();
    final Gradient gradient = new DefaultGradient(flat);
    final INDArray row = flat.reshape(flat.length());
    final GraphVertex[] vertices = network.getVertices();
    long first = 0;
    for (int index : network.topologicalSortOrder()) {
      final long parameters = vertices[index].numParams();
      final Layer layer = vertices[index].getLayer();
      if (layer instanceof FrozenLayer || layer instanceof FrozenLayerWithBackprop) {
        // a frozen layer keeps no gradient view: its range of the flat gradient is never written
        frozen.add(row.get(NDArrayIndex.interval(first, first + parameters)));
      } else if (parameters > 0) {
        final String prefix = layer.conf().getLayer().getLayerName() + "_";
        ModelZoo.gradientViews(layer)
            .forEach(
                (name, view) -> {
                  gradient.setGradientFor(prefix + name, view);
                  if (layer.updaterDivideByMinibatch(name)) {
                    trainable.add(view);
                  } else {
                    statisticsByLayer.computeIfAbsent(layer, l -> new ArrayList<>()).add(view);
                  }
                });
      }
      first += parameters;
    }
    return gradient;
  }

  /**
   * The flat gradient in native memory, as the parameter server reads and writes it.
   *
   * @return a buffer over the network's gradient view
   */
  UnsafeBuffer gradientBuffer() {
    return gradientBuffer;
  }

  /**
   * @return the number of parameters
   */
  public int parameterCount() {
    return (int) network.numParams();
  }

  /**
   * @return the parameters the optimizer trains: {@link #parameterCount()} less frozen layers' and
   *     BatchNorm's running statistics, PyTorch's count of a model's parameters
   */
  long trainableParameterCount() {
    return trainableRanges.stream().mapToLong(INDArray::length).sum();
  }

  /**
   * @return the training loss of the last batch, mean over its samples
   */
  double lastLoss() {
    return lastLoss;
  }

  /**
   * @return whether the model carries running statistics (BatchNorm) in its gradient
   */
  boolean hasRunningStatistics() {
    return !runningStatistics.isEmpty();
  }

  /**
   * @return whether the model has SyncBatchNorm layers, which need {@link #synchronizeStatistics}
   */
  public boolean hasSynchronizedStatistics() {
    return !synchronizedLayers.isEmpty();
  }

  /**
   * Sums the SyncBatchNorm layers' batch statistics over the replicas with {@code reducer}.
   *
   * @param reducer the step's reducer, or null for statistics of the local batch only
   */
  void synchronizeStatistics(StatisticsReducer reducer) {
    this.reducer = reducer;
    for (SyncBatchNormLayer layer : synchronizedLayers) {
      layer.reducer(reducer);
    }
  }

  /**
   * @return the L2 norm of the mean gradient of the last step, before clipping
   */
  double lastGradientNorm() {
    return lastGradientNorm;
  }

  /**
   * Tells {@code progress}, during each {@link #computeGradients}, how much of the gradient the
   * backward pass has finished: it runs from the last layer to the first and the parameters lie in
   * layer order, so after each layer the buffer is final from that layer's first parameter to the
   * end (running statistics already scaled by the slice's share). The first call wraps each layer
   * that has parameters, except output and frozen layers, in an {@link ObservedLayer}.
   *
   * @param progress the receiver, or null to stop telling
   * @throws IllegalStateException for a model with SyncBatchNorm layers, whose statistics rounds
   *     run inside the backward pass
   */
  void reportBackward(BackwardProgress progress) {
    if (progress != null && hasSynchronizedStatistics()) {
      throw new IllegalStateException(
          "a model with SyncBatchNorm layers cannot report its backward pass: its statistics"
              + " rounds run inside it");
    }
    if (progress != null && !layersObserved) {
      observeLayers();
      layersObserved = true;
    }
    this.progress = progress;
  }

  /** Wraps the hidden layers with parameters; see {@link #reportBackward}. */
  private void observeLayers() {
    final List<INDArray> unobserved = new ArrayList<>();
    final Map<String, Runnable> doneByName = new HashMap<>();
    final GraphVertex[] vertices = network.getVertices();
    long first = 0;
    for (int index : network.topologicalSortOrder()) {
      final GraphVertex vertex = vertices[index];
      final long parameters = vertex.numParams();
      if (parameters > 0) {
        final Layer layer = vertex.getLayer();
        final List<INDArray> statistics = statisticsByLayer.getOrDefault(layer, List.of());
        if (vertex instanceof LayerVertex layerVertex
            && !vertex.isOutputVertex()
            && !(layer instanceof FrozenLayer)
            && !(layer instanceof FrozenLayerWithBackprop)) {
          final int firstFloat = (int) first;
          final Runnable done = () -> finished(firstFloat, statistics);
          if (compiled != null) {
            doneByName.put(vertex.getVertexName(), done);
          } else {
            layerVertex.setLayer(new ObservedLayer(layer, done));
          }
        } else {
          unobserved.addAll(statistics);
        }
      }
      first += parameters;
    }
    unobservedStatistics = unobserved;
    if (compiled != null) {
      compiled.onLayerDone(
          name -> {
            final Runnable done = doneByName.get(name);
            if (done != null) {
              done.run();
            }
          });
    }
  }

  /** An observed layer's backward pass is done: the gradient is final from its first float on. */
  private void finished(int firstFloat, List<INDArray> statistics) {
    scale(statistics);
    if (progress != null) {
      progress.finalFrom(firstFloat);
    }
  }

  private void scale(List<INDArray> statistics) {
    if (statisticsShare != 1) {
      for (INDArray view : statistics) {
        view.muli(statisticsShare);
      }
    }
  }

  /**
   * Runs forward and backward; leaves the gradient summed over the batch's samples in the buffer,
   * and this slice's running-statistics update scaled by its share. An empty batch leaves zeros.
   *
   * @param features {@code [n, channels, height, width]}, or null for an empty batch
   * @param labels {@code [n, classes]}, or null for an empty batch
   * @param statisticsShare this slice's weight in the running-statistics update of the step; the
   *     shares of one step's slices add up to 1
   */
  void computeGradients(INDArray features, INDArray labels, double statisticsShare) {
    computeGradients(features, labels, null, statisticsShare);
  }

  /**
   * Runs forward and backward; leaves the gradient summed over the batch's samples in the buffer,
   * and this slice's running-statistics update scaled by its share. An empty batch leaves zeros.
   *
   * @param features {@code [n, channels, height, width]}, or null for an empty batch
   * @param labels {@code [n, classes]}, or null for an empty batch
   * @param samples each sample's key ({@link SampleDropout#sampleKey}), which its dropout masks
   *     follow; null for a model without dropout
   * @param statisticsShare this slice's weight in the running-statistics update of the step; the
   *     shares of one step's slices add up to 1
   * @throws IllegalStateException when the model has dropout and {@code samples} does not give one
   *     key per sample
   */
  void computeGradients(
      INDArray features, INDArray labels, long[] samples, double statisticsShare) {
    for (SampleDropout dropout : dropouts) {
      dropout.samples(samples);
    }
    if (features == null) {
      network.getGradientsViewArray().assign(0);
      lastLoss = 0;
      contributeNoStatistics();
      return;
    }
    this.statisticsShare = statisticsShare;
    for (INDArray view : frozenRanges) {
      view.assign(0);
    }
    if (compiled != null) {
      lastLoss =
          compiled.computeGradients(ModelZoo.inputs(network, features), labels)
              + network.calcRegularizationScore(true);
      scale(unobservedStatistics);
      return;
    }
    network.setInputs(ModelZoo.inputs(network, features));
    // auxiliary classifiers (GoogLeNet's) learn the image's class too
    final INDArray[] everyOutput = new INDArray[network.getNumOutputArrays()];
    Arrays.fill(everyOutput, labels);
    network.setLabels(everyOutput);
    network.computeGradientAndScore();
    lastLoss = network.score();
    network.clearLayerMaskArrays();
    scale(unobservedStatistics);
  }

  /**
   * Gradient accumulation: runs forward and backward over the batch in micro-batches of the given
   * sizes, contiguous and in order, grouped into slices, and leaves the sum of their gradient sums
   * in the buffer. Each slice's micro-batches are added in order, then the slices' sums in order,
   * as one worker per slice and then the parameter server add them ({@code ((g0 + g1) + g2) +
   * ...}): one replica computing a global batch cut as the workers cut it leaves exactly the bits
   * that the workers receive from the server. The loss is the mean over the batch.
   *
   * <p>While the micro-batches run, nobody is told of the backward pass's progress: the buffer is
   * final only after the last one, and {@link GradientExchange#finish} then sends it whole.
   *
   * @param features {@code [n, ...]}, or null for an empty batch
   * @param labels {@code [n, ...]}, or null for an empty batch
   * @param samples each sample's key ({@link SampleDropout#sampleKey}); null for a model without
   *     dropout
   * @param sizes each micro-batch's samples, none empty, adding up to n; none or one computes the
   *     batch in one pass
   * @param shares each micro-batch's weight in the running-statistics update
   * @param sliceParts each slice's micro-batches, in order, adding up to the micro-batches
   */
  void computeGradients(
      INDArray features,
      INDArray labels,
      long[] samples,
      int[] sizes,
      double[] shares,
      int[] sliceParts) {
    final int count = features == null ? 0 : (int) features.size(0);
    if (samples != null && samples.length != count) {
      throw new IllegalArgumentException(
          samples.length + " sample keys for a batch of " + count + " samples");
    }
    if (sizes.length != shares.length
        || Arrays.stream(sizes).sum() != count
        || Arrays.stream(sizes).anyMatch(size -> size <= 0)
        || Arrays.stream(sliceParts).sum() != sizes.length
        || Arrays.stream(sliceParts).anyMatch(parts -> parts <= 0)) {
      throw new IllegalArgumentException(
          "micro-batches "
              + Arrays.toString(sizes)
              + " in slices of "
              + Arrays.toString(sliceParts)
              + " for a batch of "
              + count);
    }
    if (sizes.length <= 1) {
      computeGradients(features, labels, samples, sizes.length == 0 ? 0 : shares[0]);
      return;
    }
    final INDArray view = network.getGradientsViewArray();
    if (accumulated == null) {
      accumulated = Nd4j.createUninitialized(DataType.FLOAT, view.shape(), view.ordering());
    }
    if (sliceParts.length > 1
        && Arrays.stream(sliceParts).anyMatch(parts -> parts > 1)
        && sliceAccumulated == null) {
      sliceAccumulated = Nd4j.createUninitialized(DataType.FLOAT, view.shape(), view.ordering());
    }
    // one slice in parts, or slices of one part each: the sum is one fold over the parts
    final INDArray slice = sliceParts.length == 1 ? accumulated : sliceAccumulated;
    final BackwardProgress told = progress;
    progress = null;
    try {
      double lossSum = 0;
      int from = 0;
      int part = 0;
      for (int s = 0; s < sliceParts.length; s++) {
        for (int p = 0; p < sliceParts[s]; p++, part++) {
          final int size = sizes[part];
          final INDArray partFeatures = rows(features, from, size);
          final INDArray partLabels = rows(labels, from, size);
          computeGradients(
              partFeatures,
              partLabels,
              samples == null ? null : Arrays.copyOfRange(samples, from, from + size),
              shares[part]);
          NativeMemory.release(partFeatures, partLabels);
          if (sliceParts[s] > 1) {
            if (p == 0) {
              slice.assign(view);
            } else {
              slice.addi(view);
            }
          }
          lossSum += lastLoss * size;
          from += size;
        }
        if (sliceParts.length > 1) {
          final INDArray sliceSum = sliceParts[s] > 1 ? slice : view;
          if (s == 0) {
            accumulated.assign(sliceSum);
          } else {
            accumulated.addi(sliceSum);
          }
        }
      }
      view.assign(accumulated);
      lastLoss = lossSum / count;
    } finally {
      progress = told;
    }
  }

  /** Rows {@code [from, from + count)} of {@code array}, contiguous. */
  private static INDArray rows(INDArray array, int from, int count) {
    final INDArrayIndex[] index = new INDArrayIndex[array.rank()];
    index[0] = NDArrayIndex.interval(from, from + count);
    for (int d = 1; d < index.length; d++) {
      index[d] = NDArrayIndex.all();
    }
    return array.get(index).dup('c');
  }

  /**
   * Takes part in the step's statistics rounds with zero sums, in the order a forward and backward
   * pass would make them: per layer the mean's and the variance's rounds, in topological order,
   * then the backward round, in reverse.
   */
  private void contributeNoStatistics() {
    if (reducer == null) {
      return;
    }
    for (SyncBatchNormLayer layer : synchronizedLayers) {
      reducer.sum(new float[layer.channels()]);
      reducer.sum(new float[2 * layer.channels()]);
    }
    for (int i = synchronizedLayers.size() - 1; i >= 0; i--) {
      reducer.sum(new float[2 * synchronizedLayers.get(i).channels()]);
    }
  }

  /**
   * Applies one optimizer step from the gradient sum in the buffer, as Deeplearning4j's {@code
   * fit()} would for one batch of {@code globalBatchSize} samples, after clipping the mean
   * gradient's global L2 norm (running statistics excluded) as PyTorch's {@code clip_grad_norm_}
   * does.
   *
   * @param globalBatchSize the samples behind the sum; the updater divides by it
   * @param clipNorm the largest L2 norm of the mean gradient, or 0 for no clipping
   */
  void applyUpdate(int globalBatchSize, double clipNorm) {
    step(globalBatchSize, clipNorm, true);
  }

  /**
   * Runs the optimizer as {@link #applyUpdate} does but leaves the step, instead of the gradient,
   * in the buffer, unapplied: what an asynchronous worker pushes. Counts the iteration.
   *
   * @param batchSize the samples behind the gradient sum; the updater divides by it
   * @param clipNorm the largest L2 norm of the mean gradient, or 0 for no clipping
   */
  void computeStep(int batchSize, double clipNorm) {
    step(batchSize, clipNorm, false);
  }

  private void step(int batchSize, double clipNorm, boolean apply) {
    if (fusedStep != null && !(clipNorm > 0)) {
      // nothing to clip: the norm, for the metrics, comes out of the step's own pass
      final double norm =
          fusedStep.step(batchSize, network.getIterationCount(), network.getEpochCount(), apply);
      lastGradientNorm = norm / Math.max(1, batchSize);
      skipStep();
      return;
    }
    final double norm;
    if (fusedStep != null) {
      norm = fusedStep.gradientNorm();
    } else {
      double squares = 0;
      for (INDArray view : trainableRanges) {
        final double rangeNorm = view.norm2Number().doubleValue();
        squares += rangeNorm * rangeNorm;
      }
      norm = Math.sqrt(squares);
    }
    lastGradientNorm = norm / Math.max(1, batchSize);
    if (clipNorm > 0 && lastGradientNorm > clipNorm) {
      final double scale = clipNorm / (lastGradientNorm + CLIP_EPSILON);
      for (INDArray view : trainableRanges) {
        view.muli(scale);
      }
    }
    if (fusedStep != null) {
      fusedStep.step(batchSize, network.getIterationCount(), network.getEpochCount(), apply);
    } else {
      network
          .getUpdater()
          .update(
              gradient,
              network.getIterationCount(),
              network.getEpochCount(),
              batchSize,
              LayerWorkspaceMgr.noWorkspaces());
      if (apply) {
        final INDArray parameters = network.params();
        parameters.subi(network.getGradientsViewArray().reshape(parameters.shape()));
      }
    }
    skipStep();
  }

  /** Counts an iteration without a step: a worker with no samples in a step of its own. */
  void skipStep() {
    network.getConfiguration().setIterationCount(network.getIterationCount() + 1);
  }

  /**
   * Multiplies the buffer by {@code factor}: an asynchronous worker's step becomes its update,
   * negated and weighted by its share of the global batch.
   *
   * @param factor the factor
   */
  void scaleBuffer(double factor) {
    network.getGradientsViewArray().muli(factor);
  }

  /**
   * Writes the parameters times {@code weight} into the buffer: local SGD's contribution to a
   * sample-weighted average.
   *
   * @param weight the samples this replica trained on since the last average
   */
  void loadWeightedParameters(int weight) {
    final INDArray view = network.getGradientsViewArray();
    view.assign(network.params().reshape(view.shape())).muli(weight);
  }

  /**
   * Sets the parameters to the buffer divided by {@code total}: the sum of the replicas' weighted
   * parameters, averaged.
   *
   * @param total the sum of the weights
   */
  void takeAverage(int total) {
    final INDArray parameters = network.params();
    parameters.assign(network.getGradientsViewArray().reshape(parameters.shape())).divi(total);
  }

  /**
   * @return a copy of the parameters, the base an asynchronous stage adds its updates to
   */
  INDArray parametersCopy() {
    return network.params().dup();
  }

  /**
   * Sets the parameters to {@code base} plus the buffer: an asynchronous stage's starting
   * parameters plus the sum of every worker's updates so far.
   *
   * @param base the stage's starting parameters
   */
  void setParameters(INDArray base) {
    final INDArray parameters = network.params();
    parameters.assign(base).addi(network.getGradientsViewArray().reshape(parameters.shape()));
  }

  /**
   * The learning rate the optimizer applies at the next step.
   *
   * @return the scheduled rate
   */
  double learningRate() {
    for (Layer layer : network.getLayers()) {
      if (layer.numParams() > 0) {
        final String parameter = layer.paramTable().keySet().iterator().next();
        return layer
            .conf()
            .getLayer()
            .getUpdaterByParam(parameter)
            .getLearningRate(network.getIterationCount(), network.getEpochCount());
      }
    }
    return 0;
  }

  /** Marks the end of an epoch, for epoch-based schedules. */
  void endEpoch() {
    network.incrementEpochCount();
  }

  /**
   * @return the network, for evaluation
   */
  public ComputationGraph network() {
    return network;
  }

  /**
   * A snapshot of this replica in arrays it keeps and overwrites at its next call: a stage's
   * result, which Spark serializes before the stage ends, so the next stage's end allocates nothing
   * of the model's size (arrays of a few MB are humongous objects to G1, and each allocation of one
   * can start a collection).
   *
   * @return parameters, optimizer state and counters, valid until this method's next call
   */
  ModelState resultSnapshot() {
    final INDArray updaterView = network.getUpdater(true).getStateViewArray();
    final INDArray parameters = network.params();
    final long updaterLength = updaterView == null ? 0 : updaterView.length();
    if (resultParameters == null || resultParameters.length != parameters.length()) {
      resultParameters = new float[(int) parameters.length()];
    }
    if (resultUpdaterState == null || resultUpdaterState.length != updaterLength) {
      resultUpdaterState = new float[(int) updaterLength];
    }
    NativeMemory.read(parameters, resultParameters);
    if (updaterLength > 0) {
      NativeMemory.read(updaterView, resultUpdaterState);
    }
    return new ModelState(
        configurationJson,
        resultParameters,
        resultUpdaterState,
        network.getIterationCount(),
        network.getEpochCount());
  }

  /**
   * A snapshot of this replica.
   *
   * @return parameters, optimizer state and counters
   */
  public ModelState snapshot() {
    final INDArray updaterView = network.getUpdater(true).getStateViewArray();
    return new ModelState(
        configurationJson,
        network.params().toFloatVector(),
        updaterView == null ? new float[0] : updaterView.toFloatVector(),
        network.getIterationCount(),
        network.getEpochCount());
  }

  /**
   * CRC-32 of the parameters' bytes: equal on two replicas exactly when they hold the same bits.
   * Read in place, without copying the parameters.
   *
   * @return the checksum
   */
  long parametersCrc() {
    final Fingerprint crc = new Fingerprint();
    crc.add(network.params());
    return crc.value();
  }

  /**
   * The fingerprint of this replica's state, equal to {@link ModelState#fingerprint()} of its
   * {@link #snapshot()}; read in place, without copying anything.
   *
   * @return CRC-32 and CRC-32C over the parameters, the optimizer state, the counters and the
   *     configuration
   */
  long fingerprint() {
    final Fingerprint fingerprint = new Fingerprint();
    fingerprint.add(network.params());
    fingerprint.add(network.getUpdater(true).getStateViewArray());
    return fingerprint.finish(
        network.getIterationCount(), network.getEpochCount(), configurationJson);
  }

  /**
   * CRC-32 of float arrays' little-endian bytes, one array after the other.
   *
   * @param arrays the values
   * @return the checksum
   */
  public static long crc32(float[]... arrays) {
    final Fingerprint crc = new Fingerprint();
    for (float[] values : arrays) {
      crc.add(values);
    }
    return crc.value();
  }
}
