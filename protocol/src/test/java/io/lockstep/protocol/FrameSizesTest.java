package io.lockstep.protocol;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.aeron.driver.Configuration;
import io.aeron.logbuffer.FrameDescriptor;
import io.aeron.protocol.DataHeaderFlyweight;
import io.lockstep.conf.JobConfig;
import org.junit.jupiter.api.Test;

/**
 * The configuration checks chunk sizes against Aeron's limits without depending on Aeron: its
 * copies of them must be Aeron's own and the frame's.
 */
class FrameSizesTest {
  @Test
  void theConfigurationsLimitsAreAeronsAndTheFrames() {
    assertEquals(Configuration.MAX_UDP_PAYLOAD_LENGTH, JobConfig.AERON_MAX_FRAME_BYTES);
    assertEquals(DataHeaderFlyweight.HEADER_LENGTH, JobConfig.AERON_HEADER_BYTES);
    assertEquals(FrameDescriptor.FRAME_ALIGNMENT, JobConfig.AERON_FRAME_ALIGNMENT);
    assertEquals(Frame.HEADER_LENGTH, JobConfig.FRAME_HEADER_BYTES);
  }

  @Test
  void theLargestChunkFillsOneAeronFrame() {
    for (long term = 64 << 10; term <= 1L << 30; term <<= 1) {
      final long frame =
          JobConfig.largestChunkBytes(term)
              + DataHeaderFlyweight.HEADER_LENGTH
              + Frame.HEADER_LENGTH;
      assertEquals(Math.min(Configuration.MAX_UDP_PAYLOAD_LENGTH, term / 8), frame, "term " + term);
    }
    for (int mtu = 1280; mtu <= 9000; mtu += 4) {
      final long frame =
          JobConfig.chunkBytesForMtu(mtu, 1 << 20)
              + DataHeaderFlyweight.HEADER_LENGTH
              + Frame.HEADER_LENGTH;
      assertEquals(0, frame % FrameDescriptor.FRAME_ALIGNMENT, "mtu " + mtu);
      assertTrue(frame + 28 <= mtu, "mtu " + mtu);
    }
  }
}
