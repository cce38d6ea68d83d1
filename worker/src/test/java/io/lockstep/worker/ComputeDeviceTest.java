package io.lockstep.worker;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Test;

/** What a worker does with the GPU Spark assigned its task, on this CPU build. */
class ComputeDeviceTest {

  @Test
  void bindsNothingWithoutAGpuOrOnTheCpuBackend() {
    assertEquals(-1, ComputeDevice.bind(List.of()));
    // the CPU backend cannot use the device: logged, not bound
    assertEquals(-1, ComputeDevice.bind(List.of("0", "1")));
  }

  @Test
  void refusesAnAddressThatIsNotADeviceNumber() {
    final IllegalArgumentException e =
        assertThrows(IllegalArgumentException.class, () -> ComputeDevice.bind(List.of("GPU-7f3")));
    assertTrue(e.getMessage().contains("discoveryScript"), e.getMessage());
  }
}
