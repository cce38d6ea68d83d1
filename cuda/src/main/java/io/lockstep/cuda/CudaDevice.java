package io.lockstep.cuda;

import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.Map;

/**
 * One GPU: its primary context, shared by every engine on it in this JVM, and the kernels compiled
 * for it.
 */
public final class CudaDevice {
  private static final Map<Integer, CudaDevice> OPEN = new HashMap<>();

  private final int ordinal;
  private final long context;
  private final String name;
  private final int major;
  private final int minor;
  private Kernels kernels;

  private CudaDevice(int ordinal, long context, String name, int major, int minor) {
    this.ordinal = ordinal;
    this.context = context;
    this.name = name;
    this.major = major;
    this.minor = minor;
  }

  /**
   * Opens a device once per JVM: loads the CUDA libraries, initializes the driver and retains the
   * device's primary context.
   *
   * @param ordinal the device's number, as {@code CUDA_VISIBLE_DEVICES} and Spark's GPU addresses
   *     count them
   * @return the device, current on the calling thread
   * @throws CudaException when CUDA is not found or the device does not exist
   */
  public static synchronized CudaDevice open(int ordinal) {
    CudaDevice device = OPEN.get(ordinal);
    if (device == null) {
      CudaLibraries.load();
      final int init = Driver.cuInit(0);
      if (init != 0) {
        Driver.check(init, "cuInit (is an NVIDIA GPU and its driver present?)");
      }
      final int[] count = new int[1];
      Driver.check(Driver.cuDeviceGetCount(count), "cuDeviceGetCount");
      if (ordinal < 0 || ordinal >= count[0]) {
        throw new CudaException(
            "no CUDA device "
                + ordinal
                + ": the driver sees "
                + count[0]
                + " (CUDA_VISIBLE_DEVICES="
                + System.getenv("CUDA_VISIBLE_DEVICES")
                + ")");
      }
      final int[] handle = new int[1];
      Driver.check(Driver.cuDeviceGet(handle, ordinal), "cuDeviceGet");
      final byte[] name = new byte[256];
      Driver.check(Driver.cuDeviceGetName(name, name.length, handle[0]), "cuDeviceGetName");
      final int[] major = new int[1];
      final int[] minor = new int[1];
      Driver.check(
          Driver.cuDeviceGetAttribute(
              major, Driver.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, handle[0]),
          "cuDeviceGetAttribute");
      Driver.check(
          Driver.cuDeviceGetAttribute(
              minor, Driver.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, handle[0]),
          "cuDeviceGetAttribute");
      final long[] context = new long[1];
      Driver.check(Driver.cuDevicePrimaryCtxRetain(context, handle[0]), "cuDevicePrimaryCtxRetain");
      int end = 0;
      while (end < name.length && name[end] != 0) {
        end++;
      }
      device =
          new CudaDevice(
              ordinal,
              context[0],
              new String(name, 0, end, StandardCharsets.UTF_8),
              major[0],
              minor[0]);
      OPEN.put(ordinal, device);
    }
    device.makeCurrent();
    return device;
  }

  /** Makes the device's context current on the calling thread. */
  public void makeCurrent() {
    Driver.check(Driver.cuCtxSetCurrent(context), "cuCtxSetCurrent");
  }

  /**
   * @return the device's number
   */
  public int ordinal() {
    return ordinal;
  }

  /**
   * @return its name, e.g. "NVIDIA H200"
   */
  public String name() {
    return name;
  }

  /**
   * @return its compute capability, e.g. "9.0"
   */
  public String computeCapability() {
    return major + "." + minor;
  }

  synchronized Kernels kernels() {
    if (kernels == null) {
      makeCurrent();
      kernels = new Kernels(major, minor);
    }
    return kernels;
  }
}
