package io.lockstep.worker;

import java.util.List;
import org.nd4j.linalg.factory.Nd4j;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Binds a worker to the GPU Spark's resource scheduling gave its task ({@code
 * spark.task.resource.gpu.amount=1}): ND4J's CUDA backend computes on the device the calling thread
 * is bound to.
 */
public final class ComputeDevice {
  private static final Logger LOG = LoggerFactory.getLogger(ComputeDevice.class);

  private ComputeDevice() {}

  /**
   * Binds the calling thread to the first of the task's GPU addresses.
   *
   * @param gpuAddresses the addresses Spark assigned the task (its {@code gpu} resource); empty
   *     when it has none
   * @return the device bound, or -1 when there is none to bind (no GPU assigned, or a CPU backend,
   *     which the log says)
   * @throws IllegalArgumentException when an address is not a device number
   */
  public static int bind(List<String> gpuAddresses) {
    if (gpuAddresses.isEmpty()) {
      return -1;
    }
    final String address = gpuAddresses.get(0).trim();
    final int device;
    try {
      device = Integer.parseInt(address);
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException(
          "the task's gpu resource address '"
              + address
              + "' is not a CUDA device number; the discovery script"
              + " (spark.executor.resource.gpu.discoveryScript) must print addresses such as"
              + " [\"0\", \"1\"]");
    }
    if (!isCuda()) {
      LOG.warn(
          "the task was given GPU {}, but this build computes on the CPU ({}); build with -Pcuda",
          device,
          Nd4j.getBackend().getClass().getSimpleName());
      return -1;
    }
    Nd4j.getAffinityManager().unsafeSetDevice(device);
    return device;
  }

  private static boolean isCuda() {
    return Nd4j.getBackend()
        .getClass()
        .getName()
        .toLowerCase(java.util.Locale.ROOT)
        .contains("cuda");
  }
}
