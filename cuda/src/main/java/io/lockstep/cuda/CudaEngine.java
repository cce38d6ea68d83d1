package io.lockstep.cuda;

import com.sun.jna.Memory;
import com.sun.jna.Pointer;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.function.IntUnaryOperator;

/**
 * Trains one {@link Network} on one GPU for a fixed batch size: weights, activations, gradients and
 * the optimizer's state stay in device memory, in buffers laid out once when the engine is built.
 * Convolutions run on cuDNN (exact, deterministic algorithms in its heuristics' order, no TF32),
 * dense layers on cuBLAS, everything else on the engine's own {@link Kernels}. A step replays
 * launches whose arguments were set up front, on the engine's own stream.
 *
 * <p>Parameters and gradients are each one flat vector ({@link Network#parameters()}), so the
 * gradient leaves the device in one copy into pinned host memory, where the parameter server's
 * client reads it, and the sum comes back the same way.
 *
 * <p>Deterministic: the same parameters and batch give the same bits on every run.
 */
public final class CudaEngine implements AutoCloseable {
  private static final long FLOAT = Float.BYTES;
  private static final long WORKSPACE_LIMIT = 1L << 30;
  private static final long CUBLAS_WORKSPACE = 32L << 20;

  private final Network network;
  private final int batch;
  private final CudaDevice device;
  private final Kernels kernels;
  private final long stream;
  private final long cublas;
  private final long cudnn;
  private final List<Long> allocations = new ArrayList<>();
  private final List<Long> tensorDescriptors = new ArrayList<>();
  private final List<Long> filterDescriptors = new ArrayList<>();
  private final List<Long> convolutionDescriptors = new ArrayList<>();
  private final List<Long> hostAllocations = new ArrayList<>();
  private final Memory one = floats(1f);
  private final Memory zero = floats(0f);
  private final int parameterCount;
  private final int[][] shapes;
  private final long parameters;
  private final long gradients;
  private final long momentum;
  private final long[] outputs;
  private final long[] gradientsOf;
  private final long[] descriptors;
  private final long labels;
  private final long losses;
  private final long loss;
  private final long hostParameters;
  private final long hostGradients;
  private final long hostScalar;
  private final List<Action> forward = new ArrayList<>();
  private final List<Action> backward = new ArrayList<>();
  private final List<String> algorithms = new ArrayList<>();
  private final Launch sgd;
  private long workspace;
  private long workspaceBytes;

  /**
   * Builds the engine: allocates every buffer, picks each convolution's algorithms, and lays out
   * each launch.
   *
   * @param network what to train
   * @param batch the samples of one step
   * @param device the GPU
   * @throws CudaException when a CUDA call fails (out of device memory, say)
   */
  public CudaEngine(Network network, int batch, CudaDevice device) {
    if (batch <= 0) {
      throw new IllegalArgumentException("the batch size must be positive, not " + batch);
    }
    this.network = network;
    this.batch = batch;
    this.device = device;
    try {
      device.makeCurrent();
      this.kernels = device.kernels();
      final long[] handle = new long[1];
      Driver.check(Driver.cuStreamCreate(handle, Driver.CU_STREAM_NON_BLOCKING), "cuStreamCreate");
      this.stream = handle[0];
      Cublas.check(Cublas.cublasCreate_v2(handle), "cublasCreate");
      this.cublas = handle[0];
      Cublas.check(Cublas.cublasSetStream_v2(cublas, stream), "cublasSetStream");
      Cublas.check(Cublas.cublasSetMathMode(cublas, Cublas.DEFAULT_MATH), "cublasSetMathMode");
      Cudnn.check(Cudnn.cudnnCreate(handle), "cudnnCreate");
      this.cudnn = handle[0];
      Cudnn.check(Cudnn.cudnnSetStream(cudnn, stream), "cudnnSetStream");

      // A workspace of its own: cuBLAS then picks the same kernels on every run, whatever the
      // other engines on the device do.
      Cublas.check(
          Cublas.cublasSetWorkspace_v2(cublas, allocate(CUBLAS_WORKSPACE), CUBLAS_WORKSPACE),
          "cublasSetWorkspace");
      this.parameterCount = network.parameterCount();
      this.shapes = network.shapes();
      final long vectorBytes = Math.max(1, parameterCount) * FLOAT;
      this.parameters = allocate(vectorBytes);
      this.gradients = allocate(vectorBytes);
      this.momentum = allocate(vectorBytes);
      Driver.check(
          Driver.cuMemsetD32Async(momentum, 0, parameterCount, stream), "cuMemsetD32Async");
      this.hostParameters = allocateHost(vectorBytes);
      this.hostGradients = allocateHost(vectorBytes);
      this.hostScalar = allocateHost(FLOAT);

      final int count = network.nodes().size() + 1;
      this.outputs = new long[count];
      this.gradientsOf = new long[count];
      this.descriptors = new long[count];
      for (int i = 0; i < count; i++) {
        final int[] s = shapes[i];
        final long bytes = (long) batch * s[0] * s[1] * s[2] * FLOAT;
        outputs[i] = allocate(bytes);
        gradientsOf[i] = allocate(bytes);
        descriptors[i] = tensor(batch, s[0], s[1], s[2]);
      }
      this.labels = allocate((long) batch * Integer.BYTES);
      this.losses = allocate((long) batch * FLOAT);
      this.loss = allocate(FLOAT);
      plan();
      if (workspaceBytes > 0) {
        workspace = allocate(workspaceBytes);
      }
      this.sgd =
          Launch.elementwise(
              kernels,
              "sgd_momentum",
              parameterCount,
              (long) parameterCount,
              0f,
              0f,
              0f,
              1f,
              parameters,
              gradients,
              momentum);
      synchronize();
    } catch (RuntimeException e) {
      // what was created so far: device memory and handles outlive the JVM's collector
      close();
      throw e;
    }
  }

  /**
   * @return the network
   */
  public Network network() {
    return network;
  }

  /**
   * @return the samples of one step
   */
  public int batch() {
    return batch;
  }

  /**
   * @return the device
   */
  public CudaDevice device() {
    return device;
  }

  /**
   * @return each convolution's chosen algorithms, for the log
   */
  public List<String> algorithms() {
    return List.copyOf(algorithms);
  }

  /**
   * Copies a flat parameter vector to the device and clears the optimizer's momentum.
   *
   * @param values {@link Network#parameterCount()} values
   */
  public void setParameters(float[] values) {
    checkLength("parameters", values.length, parameterCount);
    device.makeCurrent();
    new Pointer(hostParameters).write(0, values, 0, values.length);
    copyToDevice(parameters, hostParameters, (long) values.length * FLOAT);
    Driver.check(Driver.cuMemsetD32Async(momentum, 0, parameterCount, stream), "cuMemsetD32Async");
    synchronize();
  }

  /**
   * @return the parameters, copied from the device
   */
  public float[] parameters() {
    return download(parameters, hostParameters);
  }

  /**
   * @return the last backward pass's gradient, copied from the device
   */
  public float[] gradients() {
    return download(gradients, hostGradients);
  }

  /**
   * Copies one batch to the device.
   *
   * @param images {@code batch * c * h * w} values, NCHW
   * @param classes each sample's label, in [0, classes)
   */
  public void setBatch(float[] images, int[] classes) {
    final int[] s = shapes[0];
    checkLength("images", images.length, batch * s[0] * s[1] * s[2]);
    checkLength("labels", classes.length, batch);
    final int classCount = network.classes();
    for (int i = 0; i < classes.length; i++) {
      if (classes[i] < 0 || classes[i] >= classCount) {
        throw new IllegalArgumentException(
            "label " + classes[i] + " of sample " + i + " is not in [0, " + classCount + ")");
      }
    }
    device.makeCurrent();
    final Memory host = new Memory((long) images.length * FLOAT);
    host.write(0, images, 0, images.length);
    Driver.check(
        Driver.cuMemcpyHtoDAsync_v2(outputs[0], Pointer.nativeValue(host), host.size(), stream),
        "cuMemcpyHtoDAsync(images)");
    final Memory hostLabels = new Memory((long) classes.length * Integer.BYTES);
    hostLabels.write(0, classes, 0, classes.length);
    Driver.check(
        Driver.cuMemcpyHtoDAsync_v2(
            labels, Pointer.nativeValue(hostLabels), hostLabels.size(), stream),
        "cuMemcpyHtoDAsync(labels)");
    synchronize();
  }

  /**
   * Queues the forward pass, the loss and the backward pass over the current batch; the gradient
   * (of the batch's mean loss) is in the device's gradient vector once the stream gets there.
   */
  public void forwardBackward() {
    device.makeCurrent();
    for (Action action : forward) {
      action.work().run();
    }
    for (Action action : backward) {
      action.work().run();
    }
  }

  /**
   * @return the last forward pass's mean loss (waits for the stream)
   */
  public float loss() {
    device.makeCurrent();
    Driver.check(
        Driver.cuMemcpyDtoHAsync_v2(hostScalar, loss, FLOAT, stream), "cuMemcpyDtoHAsync(loss)");
    synchronize();
    return new Pointer(hostScalar).getFloat(0);
  }

  /**
   * Copies the gradient into pinned host memory and waits for it.
   *
   * @return the host address of {@link Network#parameterCount()} floats, valid until the next call
   *     or {@link #close()}
   */
  public long gradientsToHost() {
    device.makeCurrent();
    Driver.check(
        Driver.cuMemcpyDtoHAsync_v2(hostGradients, gradients, parameterCount * FLOAT, stream),
        "cuMemcpyDtoHAsync(gradients)");
    synchronize();
    return hostGradients;
  }

  /** Queues the copy of the pinned host gradient (as changed in place, a sum) to the device. */
  public void gradientsFromHost() {
    device.makeCurrent();
    copyToDevice(gradients, hostGradients, parameterCount * FLOAT);
  }

  /**
   * Queues one SGD step with momentum over the device's gradient, as PyTorch's {@code SGD}.
   *
   * @param learningRate the step size
   * @param momentumFactor the momentum, 0 for none
   * @param weightDecay the L2 factor added to the gradient
   * @param scale what the gradient is multiplied by first (1/workers for a sum of means)
   */
  public void step(float learningRate, float momentumFactor, float weightDecay, float scale) {
    device.makeCurrent();
    sgd.set(1, learningRate);
    sgd.set(2, momentumFactor);
    sgd.set(3, weightDecay);
    sgd.set(4, scale);
    sgd.run(stream);
  }

  /** Waits for everything queued on the engine's stream. */
  public void synchronize() {
    Driver.check(Driver.cuStreamSynchronize(stream), "cuStreamSynchronize");
  }

  @Override
  public void close() {
    device.makeCurrent();
    if (stream != 0) {
      Driver.cuStreamSynchronize(stream);
    }
    for (long d : tensorDescriptors) {
      Cudnn.cudnnDestroyTensorDescriptor(d);
    }
    for (long d : filterDescriptors) {
      Cudnn.cudnnDestroyFilterDescriptor(d);
    }
    for (long d : convolutionDescriptors) {
      Cudnn.cudnnDestroyConvolutionDescriptor(d);
    }
    if (cudnn != 0) {
      Cudnn.cudnnDestroy(cudnn);
    }
    if (cublas != 0) {
      Cublas.cublasDestroy_v2(cublas);
    }
    for (long address : allocations) {
      Driver.cuMemFree_v2(address);
    }
    for (long address : hostAllocations) {
      Driver.cuMemFreeHost(address);
    }
    if (stream != 0) {
      Driver.cuStreamDestroy_v2(stream);
    }
  }

  // ---- the plan -------------------------------------------------------------------------------

  private void plan() {
    final List<Network.Node> nodes = network.nodes();
    final List<Network.Parameter> parameterList = network.parameters();
    final long[] parameterOffsets = new long[nodes.size()];
    int next = 0;
    for (int i = 0; i < nodes.size(); i++) {
      final Network.Node node = nodes.get(i);
      if (node instanceof Network.Conv
          || node instanceof Network.BatchNorm
          || node instanceof Network.Dense) {
        parameterOffsets[i] = parameterList.get(next).offset() * FLOAT;
        next += hasBias(node) ? 2 : 1;
      }
    }
    // Which backward writes each gradient first (it overwrites; later ones add): backward runs in
    // reverse, so the last reader in forward order writes first.
    final boolean[] written = new boolean[nodes.size() + 1];
    final boolean[][] accumulate = new boolean[nodes.size()][];
    for (int i = nodes.size() - 1; i >= 0; i--) {
      final int[] inputs = nodes.get(i).inputs();
      accumulate[i] = new boolean[inputs.length];
      for (int j = 0; j < inputs.length; j++) {
        accumulate[i][j] = written[inputs[j] + 1];
        written[inputs[j] + 1] = true;
      }
    }
    final List<List<Action>> backwardOf = new ArrayList<>();
    for (int i = 0; i < nodes.size(); i++) {
      backwardOf.add(planNode(i, nodes.get(i), parameterOffsets[i], accumulate[i]));
    }
    final int last = nodes.size();
    final int classes = network.classes();
    final Launch lossLaunch =
        Launch.elementwise(
            kernels,
            "softmax_cross_entropy",
            batch,
            batch,
            classes,
            outputs[last],
            labels,
            gradientsOf[last],
            losses);
    final Launch mean = new Launch(kernels, "mean_loss", 1, 1, batch, losses, loss);
    forward.add(new Action("softmax cross-entropy", () -> lossLaunch.run(stream)));
    forward.add(new Action("softmax cross-entropy", () -> mean.run(stream)));
    for (int i = nodes.size() - 1; i >= 0; i--) {
      backward.addAll(backwardOf.get(i));
    }
  }

  /** Adds a node's forward actions to the plan; returns its backward actions. */
  private List<Action> planNode(
      int index, Network.Node node, long parameterOffset, boolean[] accumulate) {
    final int out = index + 1;
    final int in = node.inputs()[0] + 1;
    final int[] inShape = shapes[in];
    final int[] outShape = shapes[out];
    final long inElements = (long) batch * inShape[0] * inShape[1] * inShape[2];
    final long outElements = (long) batch * outShape[0] * outShape[1] * outShape[2];
    final List<Action> forwardActions = new ArrayList<>();
    final List<Action> backwardActions = new ArrayList<>();
    final int acc = accumulate[0] ? 1 : 0;
    if (node instanceof Network.Conv c) {
      planConv(c, in, out, parameterOffset, accumulate[0], forwardActions, backwardActions);
    } else if (node instanceof Network.BatchNorm) {
      planNorm(in, out, parameterOffset, accumulate[0], forwardActions, backwardActions);
    } else if (node instanceof Network.Relu) {
      final Launch f =
          Launch.elementwise(
              kernels, "relu_forward", outElements, outElements, outputs[in], outputs[out]);
      final Launch b =
          Launch.elementwise(
              kernels,
              "relu_backward",
              outElements,
              outElements,
              outputs[out],
              gradientsOf[out],
              gradientsOf[in],
              acc);
      forwardActions.add(new Action("relu forward", () -> f.run(stream)));
      backwardActions.add(new Action("relu backward", () -> b.run(stream)));
    } else if (node instanceof Network.MaxPool m) {
      final long argmax = allocate(outElements * Integer.BYTES);
      final Launch f =
          Launch.elementwise(
              kernels,
              "max_pool_forward",
              outElements,
              outElements,
              inShape[1],
              inShape[2],
              outShape[1],
              outShape[2],
              m.kernel(),
              m.stride(),
              m.pad(),
              outputs[in],
              outputs[out],
              argmax);
      final Launch b =
          Launch.elementwise(
              kernels,
              "max_pool_backward",
              inElements,
              inElements,
              inShape[1],
              inShape[2],
              outShape[1],
              outShape[2],
              m.kernel(),
              m.stride(),
              m.pad(),
              argmax,
              gradientsOf[out],
              gradientsOf[in],
              acc);
      forwardActions.add(new Action("max pool forward", () -> f.run(stream)));
      backwardActions.add(new Action("max pool backward", () -> b.run(stream)));
    } else if (node instanceof Network.GlobalAverage) {
      final int inner = inShape[1] * inShape[2];
      final Launch f =
          Launch.elementwise(
              kernels,
              "global_average_forward",
              outElements,
              outElements,
              inner,
              outputs[in],
              outputs[out]);
      final Launch b =
          Launch.elementwise(
              kernels,
              "global_average_backward",
              inElements,
              inElements,
              inner,
              gradientsOf[out],
              gradientsOf[in],
              acc);
      forwardActions.add(new Action("global average forward", () -> f.run(stream)));
      backwardActions.add(new Action("global average backward", () -> b.run(stream)));
    } else if (node instanceof Network.Dense d) {
      planDense(d, in, out, parameterOffset, accumulate[0], forwardActions, backwardActions);
    } else if (node instanceof Network.Add a) {
      final int right = a.right() + 1;
      final Launch f =
          Launch.elementwise(
              kernels,
              "add_forward",
              outElements,
              outElements,
              outputs[in],
              outputs[right],
              outputs[out]);
      final Launch left =
          Launch.elementwise(
              kernels,
              "pass_gradient",
              outElements,
              outElements,
              gradientsOf[out],
              gradientsOf[in],
              acc);
      final Launch other =
          Launch.elementwise(
              kernels,
              "pass_gradient",
              outElements,
              outElements,
              gradientsOf[out],
              gradientsOf[right],
              accumulate[1] ? 1 : 0);
      forwardActions.add(new Action("add forward", () -> f.run(stream)));
      backwardActions.add(new Action("add backward", () -> left.run(stream)));
      backwardActions.add(new Action("add backward", () -> other.run(stream)));
    }
    forward.addAll(forwardActions);
    return backwardActions;
  }

  private void planConv(
      Network.Conv c,
      int in,
      int out,
      long weightOffset,
      boolean accumulate,
      List<Action> forwardActions,
      List<Action> backwardActions) {
    final int[] inShape = shapes[in];
    final int[] outShape = shapes[out];
    final long filter = filter(c.outChannels(), inShape[0], c.kernel());
    final long[] handle = new long[1];
    Cudnn.check(Cudnn.cudnnCreateConvolutionDescriptor(handle), "cudnnCreateConvolutionDescriptor");
    final long conv = handle[0];
    convolutionDescriptors.add(conv);
    Cudnn.check(
        Cudnn.cudnnSetConvolution2dDescriptor(
            conv,
            c.pad(),
            c.pad(),
            c.stride(),
            c.stride(),
            1,
            1,
            Cudnn.CROSS_CORRELATION,
            Cudnn.DATA_FLOAT),
        "cudnnSetConvolution2dDescriptor(" + c.name() + ")");
    Cudnn.check(
        Cudnn.cudnnSetConvolutionMathType(conv, Cudnn.FMA_MATH), "cudnnSetConvolutionMathType");
    final long x = descriptors[in];
    final long y = descriptors[out];
    final Memory perf = new Memory((long) Cudnn.PERF_BYTES * 8);
    final int[] returned = new int[1];
    final long[] bytes = new long[1];
    Cudnn.check(
        Cudnn.cudnnGetConvolutionForwardAlgorithm_v7(cudnn, x, filter, conv, y, 8, returned, perf),
        "cudnnGetConvolutionForwardAlgorithm_v7(" + c.name() + ")");
    final long[] forwardChoice =
        choose(
            perf,
            returned[0],
            Cudnn.EXACT_FORWARD,
            a -> Cudnn.cudnnGetConvolutionForwardWorkspaceSize(cudnn, x, filter, conv, y, a, bytes),
            bytes,
            c.name() + " forward");
    final long[] dataChoice;
    if (in > 0) {
      Cudnn.check(
          Cudnn.cudnnGetConvolutionBackwardDataAlgorithm_v7(
              cudnn, filter, y, conv, x, 6, returned, perf),
          "cudnnGetConvolutionBackwardDataAlgorithm_v7(" + c.name() + ")");
      dataChoice =
          choose(
              perf,
              returned[0],
              Cudnn.EXACT_BACKWARD_DATA,
              a ->
                  Cudnn.cudnnGetConvolutionBackwardDataWorkspaceSize(
                      cudnn, filter, y, conv, x, a, bytes),
              bytes,
              c.name() + " backward data");
    } else {
      dataChoice = null;
    }
    Cudnn.check(
        Cudnn.cudnnGetConvolutionBackwardFilterAlgorithm_v7(
            cudnn, x, y, conv, filter, 7, returned, perf),
        "cudnnGetConvolutionBackwardFilterAlgorithm_v7(" + c.name() + ")");
    final long[] filterChoice =
        choose(
            perf,
            returned[0],
            Cudnn.EXACT_BACKWARD_FILTER,
            a ->
                Cudnn.cudnnGetConvolutionBackwardFilterWorkspaceSize(
                    cudnn, x, y, conv, filter, a, bytes),
            bytes,
            c.name() + " backward filter");
    algorithms.add(
        c.name()
            + ": forward "
            + forwardChoice[0]
            + ", backward data "
            + (dataChoice == null ? "-" : dataChoice[0])
            + ", backward filter "
            + filterChoice[0]);

    final long w = parameters + weightOffset;
    final long dw = gradients + weightOffset;
    final long biasOffset =
        weightOffset + (long) c.outChannels() * inShape[0] * c.kernel() * c.kernel() * FLOAT;
    final long outElements = (long) batch * outShape[0] * outShape[1] * outShape[2];
    forwardActions.add(
        new Action(
            "conv forward",
            () ->
                Cudnn.check(
                    Cudnn.cudnnConvolutionForward(
                        cudnn,
                        one,
                        x,
                        outputs[in],
                        filter,
                        w,
                        conv,
                        (int) forwardChoice[0],
                        workspace,
                        workspaceBytes,
                        zero,
                        y,
                        outputs[out]),
                    "cudnnConvolutionForward")));
    if (c.bias()) {
      final Launch bias =
          Launch.elementwise(
              kernels,
              "bias_forward",
              outElements,
              outElements,
              outShape[0],
              outShape[1] * outShape[2],
              outputs[out],
              parameters + biasOffset);
      forwardActions.add(new Action("conv bias", () -> bias.run(stream)));
      final Launch biasGradient =
          new Launch(
              kernels,
              "channel_sum",
              outShape[0],
              Kernels.BLOCK,
              batch,
              outShape[0],
              outShape[1] * outShape[2],
              gradientsOf[out],
              gradients + biasOffset);
      backwardActions.add(new Action("conv bias gradient", () -> biasGradient.run(stream)));
    }
    backwardActions.add(
        new Action(
            "conv backward filter",
            () ->
                Cudnn.check(
                    Cudnn.cudnnConvolutionBackwardFilter(
                        cudnn,
                        one,
                        x,
                        outputs[in],
                        y,
                        gradientsOf[out],
                        conv,
                        (int) filterChoice[0],
                        workspace,
                        workspaceBytes,
                        zero,
                        filter,
                        dw),
                    "cudnnConvolutionBackwardFilter")));
    if (dataChoice != null) {
      final Memory beta = accumulate ? one : zero;
      backwardActions.add(
          new Action(
              "conv backward data",
              () ->
                  Cudnn.check(
                      Cudnn.cudnnConvolutionBackwardData(
                          cudnn,
                          one,
                          filter,
                          w,
                          y,
                          gradientsOf[out],
                          conv,
                          (int) dataChoice[0],
                          workspace,
                          workspaceBytes,
                          beta,
                          x,
                          gradientsOf[in]),
                      "cudnnConvolutionBackwardData")));
    }
  }

  /**
   * Picks cuDNN's first-ranked algorithm (its heuristics, the same on every run for the same
   * shapes, device and cuDNN) among the exact ones that run within the workspace limit. Ranking by
   * timing instead ({@code cudnnFind*}) picks differently from run to run, and so changes the bits.
   *
   * @return {algorithm, workspace bytes}
   */
  private long[] choose(
      Memory perf,
      int count,
      Set<Integer> exact,
      IntUnaryOperator workspaceOf,
      long[] bytes,
      String what) {
    final StringBuilder seen = new StringBuilder();
    for (int i = 0; i < count; i++) {
      final long base = (long) Cudnn.PERF_BYTES * i;
      final int algorithm = perf.getInt(base + Cudnn.PERF_ALGO);
      final int status = perf.getInt(base + Cudnn.PERF_STATUS);
      final int determinism = perf.getInt(base + Cudnn.PERF_DETERMINISM);
      seen.append(' ')
          .append(algorithm)
          .append("/s")
          .append(status)
          .append("/d")
          .append(determinism);
      if (status == 0
          && exact.contains(algorithm)
          && workspaceOf.applyAsInt(algorithm) == 0
          && bytes[0] <= WORKSPACE_LIMIT) {
        workspaceBytes = Math.max(workspaceBytes, bytes[0]);
        return new long[] {algorithm, bytes[0]};
      }
    }
    // Not ranked by the heuristics: the exact ones in their own order, where they run.
    for (int algorithm : new TreeSet<>(exact)) {
      if (workspaceOf.applyAsInt(algorithm) == 0 && bytes[0] <= WORKSPACE_LIMIT) {
        workspaceBytes = Math.max(workspaceBytes, bytes[0]);
        return new long[] {algorithm, bytes[0]};
      }
    }
    throw new CudaException(
        "cuDNN offers no exact, deterministic fp32 algorithm for "
            + what
            + " within "
            + (WORKSPACE_LIMIT >> 20)
            + " MiB of workspace (algorithm/status/determinism:"
            + seen
            + ")");
  }

  private void planNorm(
      int in,
      int out,
      long scaleOffset,
      boolean accumulate,
      List<Action> forwardActions,
      List<Action> backwardActions) {
    final int channels = shapes[in][0];
    final long scaleDescriptor = tensor(1, channels, 1, 1);
    final long runningMean = allocate(channels * FLOAT);
    final long runningVariance = allocate(channels * FLOAT);
    final long savedMean = allocate(channels * FLOAT);
    final long savedInverse = allocate(channels * FLOAT);
    Driver.check(Driver.cuMemsetD32Async(runningMean, 0, channels, stream), "cuMemsetD32Async");
    Driver.check(
        Driver.cuMemsetD32Async(runningVariance, Float.floatToIntBits(1f), channels, stream),
        "cuMemsetD32Async");
    final long scale = parameters + scaleOffset;
    final long shift = scale + channels * FLOAT;
    final long dScale = gradients + scaleOffset;
    final long dShift = dScale + channels * FLOAT;
    final long x = descriptors[in];
    final long y = descriptors[out];
    forwardActions.add(
        new Action(
            "batch norm forward",
            () ->
                Cudnn.check(
                    Cudnn.cudnnBatchNormalizationForwardTraining(
                        cudnn,
                        Cudnn.BATCHNORM_SPATIAL,
                        one,
                        zero,
                        x,
                        outputs[in],
                        y,
                        outputs[out],
                        scaleDescriptor,
                        scale,
                        shift,
                        Network.NORM_MOMENTUM,
                        runningMean,
                        runningVariance,
                        Network.NORM_EPSILON,
                        savedMean,
                        savedInverse),
                    "cudnnBatchNormalizationForwardTraining")));
    final Memory beta = accumulate ? one : zero;
    backwardActions.add(
        new Action(
            "batch norm backward",
            () ->
                Cudnn.check(
                    Cudnn.cudnnBatchNormalizationBackward(
                        cudnn,
                        Cudnn.BATCHNORM_SPATIAL,
                        one,
                        beta,
                        one,
                        zero,
                        x,
                        outputs[in],
                        y,
                        gradientsOf[out],
                        x,
                        gradientsOf[in],
                        scaleDescriptor,
                        scale,
                        dScale,
                        dShift,
                        Network.NORM_EPSILON,
                        savedMean,
                        savedInverse),
                    "cudnnBatchNormalizationBackward")));
  }

  private void planDense(
      Network.Dense d,
      int in,
      int out,
      long weightOffset,
      boolean accumulate,
      List<Action> forwardActions,
      List<Action> backwardActions) {
    final int[] inShape = shapes[in];
    final int k = inShape[0] * inShape[1] * inShape[2];
    final int m = d.outputs();
    final long w = parameters + weightOffset;
    final long dw = gradients + weightOffset;
    final long b = w + (long) m * k * FLOAT;
    final long db = dw + (long) m * k * FLOAT;
    final long x = outputs[in];
    final long yOut = outputs[out];
    final long dy = gradientsOf[out];
    final long dx = gradientsOf[in];
    // Row-major y[batch, m] = x[batch, k] W[m, k]^T is column-major y^T = W^T(col) x^T.
    forwardActions.add(
        new Action(
            "dense forward",
            () ->
                Cublas.check(
                    Cublas.cublasSgemm_v2(
                        cublas,
                        Cublas.OP_T,
                        Cublas.OP_N,
                        m,
                        batch,
                        k,
                        one,
                        w,
                        k,
                        x,
                        k,
                        zero,
                        yOut,
                        m),
                    "cublasSgemm(" + d.name() + " forward)")));
    if (d.bias()) {
      final long elements = (long) batch * m;
      final Launch bias =
          Launch.elementwise(kernels, "bias_forward", elements, elements, m, 1, yOut, b);
      forwardActions.add(new Action("dense bias", () -> bias.run(stream)));
      final Launch biasGradient =
          new Launch(kernels, "channel_sum", m, Kernels.BLOCK, batch, m, 1, dy, db);
      backwardActions.add(new Action("dense bias gradient", () -> biasGradient.run(stream)));
    }
    // dW[m, k] = dy^T x: column-major dW^T[k, m] = x^T(col)[k, batch] dy(col)[batch, m]^T.
    backwardActions.add(
        new Action(
            "dense weight gradient",
            () ->
                Cublas.check(
                    Cublas.cublasSgemm_v2(
                        cublas,
                        Cublas.OP_N,
                        Cublas.OP_T,
                        k,
                        m,
                        batch,
                        one,
                        x,
                        k,
                        dy,
                        m,
                        zero,
                        dw,
                        k),
                    "cublasSgemm(" + d.name() + " weight gradient)")));
    if (in > 0) {
      final Memory beta = accumulate ? one : zero;
      // dx[batch, k] = dy W: column-major dx^T[k, batch] = W^T(col)[k, m] dy^T(col)[m, batch].
      backwardActions.add(
          new Action(
              "dense input gradient",
              () ->
                  Cublas.check(
                      Cublas.cublasSgemm_v2(
                          cublas,
                          Cublas.OP_N,
                          Cublas.OP_N,
                          k,
                          batch,
                          m,
                          one,
                          w,
                          k,
                          dy,
                          m,
                          beta,
                          dx,
                          k),
                      "cublasSgemm(" + d.name() + " input gradient)")));
    }
  }

  /** One queued piece of a step, named for the profile. */
  private record Action(String label, Runnable work) {}

  /**
   * Runs steps one action at a time, waiting for each, and sums the time each kind of action takes:
   * where a step's time goes (slower than a step, which queues without waiting).
   *
   * @param steps how many forward and backward passes to time
   * @return milliseconds per step by kind of action, largest first
   */
  public Map<String, Double> profile(int steps) {
    device.makeCurrent();
    final Map<String, Long> nanos = new HashMap<>();
    for (int s = 0; s < steps; s++) {
      for (List<Action> actions : List.of(forward, backward)) {
        for (Action action : actions) {
          synchronize();
          final long start = System.nanoTime();
          action.work().run();
          synchronize();
          nanos.merge(action.label(), System.nanoTime() - start, Long::sum);
        }
      }
    }
    final Map<String, Double> millis = new LinkedHashMap<>();
    nanos.entrySet().stream()
        .sorted(Map.Entry.<String, Long>comparingByValue().reversed())
        .forEach(e -> millis.put(e.getKey(), e.getValue() / 1e6 / steps));
    return millis;
  }

  // ---- buffers --------------------------------------------------------------------------------

  private static boolean hasBias(Network.Node node) {
    if (node instanceof Network.Conv c) {
      return c.bias();
    } else if (node instanceof Network.Dense d) {
      return d.bias();
    }
    return node instanceof Network.BatchNorm;
  }

  private long allocate(long bytes) {
    final long[] address = new long[1];
    Driver.check(Driver.cuMemAlloc_v2(address, bytes), "cuMemAlloc(" + bytes + " bytes)");
    allocations.add(address[0]);
    return address[0];
  }

  private long allocateHost(long bytes) {
    final long[] address = new long[1];
    Driver.check(Driver.cuMemAllocHost_v2(address, bytes), "cuMemAllocHost(" + bytes + " bytes)");
    hostAllocations.add(address[0]);
    return address[0];
  }

  private long tensor(int n, int c, int h, int w) {
    final long[] handle = new long[1];
    Cudnn.check(Cudnn.cudnnCreateTensorDescriptor(handle), "cudnnCreateTensorDescriptor");
    tensorDescriptors.add(handle[0]);
    Cudnn.check(
        Cudnn.cudnnSetTensor4dDescriptor(
            handle[0], Cudnn.TENSOR_NCHW, Cudnn.DATA_FLOAT, n, c, h, w),
        "cudnnSetTensor4dDescriptor(" + n + "x" + c + "x" + h + "x" + w + ")");
    return handle[0];
  }

  private long filter(int out, int in, int kernel) {
    final long[] handle = new long[1];
    Cudnn.check(Cudnn.cudnnCreateFilterDescriptor(handle), "cudnnCreateFilterDescriptor");
    filterDescriptors.add(handle[0]);
    Cudnn.check(
        Cudnn.cudnnSetFilter4dDescriptor(
            handle[0], Cudnn.DATA_FLOAT, Cudnn.TENSOR_NCHW, out, in, kernel, kernel),
        "cudnnSetFilter4dDescriptor");
    return handle[0];
  }

  private void copyToDevice(long to, long from, long bytes) {
    Driver.check(Driver.cuMemcpyHtoDAsync_v2(to, from, bytes, stream), "cuMemcpyHtoDAsync");
  }

  private float[] download(long from, long host) {
    device.makeCurrent();
    Driver.check(
        Driver.cuMemcpyDtoHAsync_v2(host, from, parameterCount * FLOAT, stream),
        "cuMemcpyDtoHAsync");
    synchronize();
    return new Pointer(host).getFloatArray(0, parameterCount);
  }

  private static void checkLength(String what, int actual, int expected) {
    if (actual != expected) {
      throw new IllegalArgumentException(
          what + " has " + actual + " values; the engine needs " + expected);
    }
  }

  private static Memory floats(float value) {
    final Memory memory = new Memory(FLOAT);
    memory.setFloat(0, value);
    return memory;
  }
}
